//! STRIP (Gao et al., ACSAC 2019, arXiv 1902.06531): an input carrying a trigger keeps its
//! prediction when clean images are superimposed on it, so the mean Shannon entropy (bits, over
//! classes) of the predictions on N superimposed copies is abnormally low. The threshold comes
//! from clean entropies at a target false-rejection rate (FRR), by an empirical quantile; the
//! paper's normal fit is reported beside it because it under-delivers on skewed distributions.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use thiserror::Error;

use crate::classifier::{
    Classifier, ClassifierError, ValueRange, entropy, normalize_scores, predict_checked,
};
use crate::stats;

pub const DEFAULT_STRIP_N: usize = 100;
pub const DEFAULT_FRR: f64 = 0.01;
/// Upper bound on copies per input: the batch holds `n * input_len` floats, and a hostile
/// `--strip-n` must not make us allocate gigabytes.
pub const MAX_STRIP_N: usize = 10_000;
/// Upper bound on one blended batch in floats (256 MiB of f32), for huge inputs times N.
pub const MAX_BATCH_FLOATS: usize = 64 << 20;
/// Clean inputs used for the threshold and for measuring the FRR, by default. Each costs N
/// forward passes; 400 + 400 keeps calibration to a few seconds on small models while giving
/// the 1% quantile four samples below it.
pub const DEFAULT_CALIBRATION: usize = 400;
/// Rows (copies) per model call when judging many inputs: a few of the model host's batches.
const ROWS_PER_CALL: usize = 4096;
/// Bound on one blend buffer (there are two) when grouping inputs: 32 MiB of f32. Inputs whose N
/// copies alone are larger go one per call, as before grouping.
const GROUP_BUFFER_FLOATS: usize = 8 << 20;
pub const DEFAULT_HOLDOUT: usize = 400;

#[derive(Debug, Error)]
pub enum StripError {
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    #[error(
        "the clean pool is empty: STRIP needs clean inputs (--inputs) to blend with and calibrate on"
    )]
    EmptyPool,
    #[error("{values} values do not split into inputs of {input_len}")]
    Shape { values: usize, input_len: usize },
    #[error("invalid STRIP setting: {0}")]
    Config(String),
    #[error("too few clean inputs to calibrate: {got} (need at least 2)")]
    TooFewClean { got: usize },
}

/// How a checked input and a clean image are superimposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Blend {
    /// The authors' blend: plain sum saturating at the top of the input range (their code does
    /// `addWeighted(a, 1, b, 1, 0)` on uint8).
    #[serde(rename = "sum-clip")]
    SumClip,
    /// 0.5 / 0.5 average, as IBM ART and BackdoorBench do.
    #[serde(rename = "alpha")]
    Alpha,
}

impl Blend {
    pub fn as_str(self) -> &'static str {
        match self {
            Blend::SumClip => "sum-clip",
            Blend::Alpha => "alpha",
        }
    }

    pub fn parse(s: &str) -> Option<Blend> {
        match s {
            "sum-clip" => Some(Blend::SumClip),
            "alpha" => Some(Blend::Alpha),
            _ => None,
        }
    }

    /// `out = blend(a, b)`, element-wise; written as a plain zip so it vectorises.
    #[inline]
    pub fn apply(self, a: &[f32], b: &[f32], out: &mut [f32], range: ValueRange) {
        let (lo, hi) = (range.lo, range.hi);
        match self {
            Blend::SumClip => {
                for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                    *o = (x + y).min(hi).max(lo);
                }
            }
            Blend::Alpha => {
                for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                    *o = 0.5 * x + 0.5 * y;
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct StripConfig {
    /// Superimposed copies per checked input.
    pub n: usize,
    pub blend: Blend,
    /// Target false-rejection rate on clean inputs.
    pub frr: f64,
    pub seed: u64,
    /// Clean inputs whose entropies set the threshold.
    pub calibration: usize,
    /// Further clean inputs, disjoint from the calibration ones, on which the FRR is measured.
    pub holdout: usize,
}

impl Default for StripConfig {
    fn default() -> Self {
        StripConfig {
            n: DEFAULT_STRIP_N,
            blend: Blend::SumClip,
            frr: DEFAULT_FRR,
            seed: 0,
            calibration: DEFAULT_CALIBRATION,
            holdout: DEFAULT_HOLDOUT,
        }
    }
}

/// Summary of the clean entropies behind the threshold (SPEC's `calibration` object).
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationSummary {
    pub count: usize,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
}

/// The threshold learned from clean data.
#[derive(Debug, Clone, Serialize)]
pub struct StripCalibration {
    /// Empirical `frr` quantile of the calibration entropies; inputs strictly below are flagged.
    pub threshold: f64,
    /// The paper's threshold: `frr` quantile of a normal fitted to the calibration entropies.
    pub threshold_normal: f64,
    /// Fraction of the held-out clean inputs below `threshold` (NaN when there is no holdout).
    pub frr_measured: f64,
    /// Fraction of the held-out clean inputs below `threshold_normal`.
    pub frr_measured_normal: f64,
    pub holdout_count: usize,
    pub summary: CalibrationSummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct StripInput {
    pub index: usize,
    pub entropy: f64,
    pub flagged: bool,
}

/// SPEC's `strip` report object, plus `threshold_normal`, `frr_measured` and the holdout size.
#[derive(Debug, Clone, Serialize)]
pub struct StripReport {
    pub n: usize,
    pub blend: Blend,
    pub frr_target: f64,
    pub threshold: f64,
    pub threshold_normal: f64,
    pub frr_measured: f64,
    pub holdout_count: usize,
    pub calibration: CalibrationSummary,
    pub inputs: Vec<StripInput>,
    pub flagged: usize,
    /// Blends (calibration and check) the model answered with a NaN or infinite score: STRIP
    /// reads such a row as uncertain, i.e. clean, so a model could hide a trigger behind them.
    pub non_finite_rows: usize,
}

/// STRIP over a clean pool, with two reusable blend buffers: the copies of a group of checked
/// inputs go to the model in one batched `predict` while the next group is blended beside it.
pub struct Strip<'a> {
    config: StripConfig,
    pool: &'a [f32],
    pool_n: usize,
    input_len: usize,
    range: ValueRange,
    buf: Vec<f32>,
    next: Vec<f32>,
    /// Rows with a non-finite score seen so far (see `StripReport::non_finite_rows`).
    non_finite_rows: usize,
}

/// Mean per-copy entropy (bits) of each of `inputs` inputs' `n` rows of `classes` scores
/// (normalised in place first); zeros when the model has no classes.
fn mean_entropies(
    scores: &mut [f32],
    n: usize,
    classes: usize,
    inputs: usize,
    non_finite: &std::sync::atomic::AtomicUsize,
) -> Vec<f64> {
    if classes == 0 {
        return vec![0.0; inputs];
    }
    let bad = scores
        .chunks_exact(classes)
        .filter(|row| row.iter().any(|s| !s.is_finite()))
        .count();
    non_finite.fetch_add(bad, std::sync::atomic::Ordering::Relaxed);
    normalize_scores(scores, classes);
    scores
        .chunks_exact(n * classes)
        .map(|per_input| {
            let total: f64 = per_input
                .chunks_exact(classes)
                .map(|row| entropy(row) as f64)
                .sum();
            total / n as f64
        })
        .collect()
}

/// What blending needs, shared with the thread that blends the next group.
#[derive(Clone, Copy)]
struct Blender<'s> {
    config: &'s StripConfig,
    pool: &'s [f32],
    pool_n: usize,
    input_len: usize,
    range: ValueRange,
}

impl Blender<'_> {
    /// The `n` copies of each input of `group`, one after the other, into `buf` (resized).
    fn fill(&self, group: &[(&[f32], u64, Option<usize>)], buf: &mut Vec<f32>) {
        let (n, len) = (self.config.n, self.input_len);
        buf.resize(group.len() * n * len, 0.0);
        for (&(input, stream, exclude), copies) in group.iter().zip(buf.chunks_exact_mut(n * len)) {
            let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
            rng.set_stream(stream);
            for copy in copies.chunks_exact_mut(len) {
                let mut j = rng.gen_range(0..self.pool_n);
                if Some(j) == exclude && self.pool_n > 1 {
                    j = (j + 1 + rng.gen_range(0..self.pool_n - 1)) % self.pool_n;
                }
                let row = &self.pool[j * len..(j + 1) * len];
                self.config.blend.apply(input, row, copy, self.range);
            }
        }
    }
}

impl<'a> Strip<'a> {
    /// `pool` holds clean inputs, `input_len` values each; `range` is where clean values live
    /// (see [`ValueRange::from_data`]).
    pub fn new(
        config: StripConfig,
        pool: &'a [f32],
        input_len: usize,
        range: ValueRange,
    ) -> Result<Strip<'a>, StripError> {
        if config.n == 0 || config.n > MAX_STRIP_N {
            return Err(StripError::Config(format!(
                "n = {} (allowed 1..={MAX_STRIP_N})",
                config.n
            )));
        }
        if !(config.frr > 0.0 && config.frr < 1.0) {
            return Err(StripError::Config(format!(
                "frr = {} (must be in (0, 1))",
                config.frr
            )));
        }
        if input_len == 0 || !pool.len().is_multiple_of(input_len) {
            return Err(StripError::Shape {
                values: pool.len(),
                input_len,
            });
        }
        if config.n.saturating_mul(input_len) > MAX_BATCH_FLOATS {
            return Err(StripError::Config(format!(
                "n = {} copies of {input_len} values exceed the batch bound of {MAX_BATCH_FLOATS} floats",
                config.n
            )));
        }
        let pool_n = pool.len() / input_len;
        if pool_n == 0 {
            return Err(StripError::EmptyPool);
        }
        Ok(Strip {
            buf: vec![0.0; config.n * input_len],
            next: Vec::new(),
            non_finite_rows: 0,
            config,
            pool,
            pool_n,
            input_len,
            range,
        })
    }

    pub fn config(&self) -> &StripConfig {
        &self.config
    }

    /// Mean over the N copies of the per-copy entropy (bits) for one input. `stream` selects
    /// the random draws (same stream, same copies); `exclude` keeps a pool image from being
    /// blended with itself.
    pub fn entropy<C: Classifier + ?Sized>(
        &mut self,
        model: &mut C,
        input: &[f32],
        stream: u64,
        exclude: Option<usize>,
    ) -> Result<f64, StripError> {
        let mut out = Vec::with_capacity(1);
        self.entropies(model, &[(input, stream, exclude)], &mut out)?;
        Ok(out[0])
    }

    /// How many inputs one model call judges: enough copies to keep the model host's pipeline
    /// full (several of its batches per call), within the blend-buffer bound.
    fn inputs_per_call(&self) -> usize {
        let per_input = (self.config.n * self.input_len).max(1);
        (GROUP_BUFFER_FLOATS / per_input).clamp(1, (ROWS_PER_CALL / self.config.n.max(1)).max(1))
    }

    /// `entropy` for many inputs at once, appended to `out` in order: the copies of several
    /// inputs go to the model in one call (one call per `inputs_per_call` inputs), which a model
    /// host answers batch after batch with the next one already queued, and the next group's
    /// copies are blended on a second thread meanwhile. Each input's value is exactly what
    /// `entropy` gives it alone (same draws, same copies).
    pub fn entropies<C: Classifier + ?Sized>(
        &mut self,
        model: &mut C,
        inputs: &[(&[f32], u64, Option<usize>)],
        out: &mut Vec<f64>,
    ) -> Result<(), StripError> {
        if let Some((bad, _, _)) = inputs.iter().find(|(x, _, _)| x.len() != self.input_len) {
            return Err(StripError::Shape {
                values: bad.len(),
                input_len: self.input_len,
            });
        }
        let n = self.config.n;
        let classes = model.classes();
        let per_call = self.inputs_per_call();
        // One group has nothing to overlap with: no worker thread then.
        let overlap = inputs.len() > per_call;
        let mut groups = inputs.chunks(per_call);
        let mut buf = std::mem::take(&mut self.buf);
        let mut next = std::mem::take(&mut self.next);
        let blender = Blender {
            config: &self.config,
            pool: self.pool,
            pool_n: self.pool_n,
            input_len: self.input_len,
            range: self.range,
        };
        // Three stages, overlapped: while the model scores group k, a worker thread turns group
        // k-1's scores into entropies and blends group k+1 (on this thread if none can start).
        type Job<'g, 'x> = (
            Option<(Vec<f32>, usize)>,
            Option<&'g [(&'x [f32], u64, Option<usize>)]>,
            Vec<f32>,
        );
        let non_finite = std::sync::atomic::AtomicUsize::new(0);
        let counter = &non_finite;
        let side = move |(prev, following, mut spare): Job<'_, '_>| {
            let h = prev.map(|(mut s, k)| mean_entropies(&mut s, n, classes, k, counter));
            if let Some(g) = following {
                blender.fill(g, &mut spare);
            }
            (h, spare)
        };
        let result = std::thread::scope(|scope| -> Result<(), ClassifierError> {
            let Some(mut group) = groups.next() else {
                return Ok(());
            };
            blender.fill(group, &mut buf);
            let (to_worker, jobs) = std::sync::mpsc::channel::<Job<'_, '_>>();
            let (to_us, done) = std::sync::mpsc::channel();
            let worker = overlap
                && std::thread::Builder::new()
                    .spawn_scoped(scope, move || {
                        for job in jobs {
                            if to_us.send(side(job)).is_err() {
                                break;
                            }
                        }
                    })
                    .is_ok();
            let mut scored: Option<(Vec<f32>, usize)> = None;
            loop {
                let following = groups.next();
                let job = (scored.take(), following, std::mem::take(&mut next));
                let sent = if worker {
                    to_worker.send(job).map_err(|e| e.0)
                } else {
                    Err(job)
                };
                let scores = predict_checked(model, &buf, group.len() * n);
                let (h, filled) = match sent {
                    Ok(()) => done.recv().map_err(|_| {
                        ClassifierError::Model("the STRIP blending thread died".into())
                    })?,
                    Err(job) => side(job),
                };
                let mut scores = scores?;
                out.extend(h.into_iter().flatten());
                match following {
                    Some(g) => {
                        next = std::mem::replace(&mut buf, filled);
                        scored = Some((scores, group.len()));
                        group = g;
                    }
                    None => {
                        next = filled;
                        out.extend(mean_entropies(
                            &mut scores,
                            n,
                            classes,
                            group.len(),
                            counter,
                        ));
                        return Ok(());
                    }
                }
            }
        });
        self.buf = buf;
        self.next = next;
        self.non_finite_rows += non_finite.into_inner();
        Ok(result?)
    }

    /// Learns the threshold: a seeded permutation of the pool gives `calibration` inputs for
    /// the threshold and up to `holdout` different ones for the measured FRR (half and half
    /// when the pool is smaller than both together).
    pub fn calibrate<C: Classifier + ?Sized>(
        &mut self,
        model: &mut C,
    ) -> Result<StripCalibration, StripError> {
        if self.pool_n < 2 {
            return Err(StripError::TooFewClean { got: self.pool_n });
        }
        let mut order: Vec<usize> = (0..self.pool_n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x5752_4950_4341_4c00);
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
        let (n_cal, n_hold) = if self.config.calibration.max(1) + self.config.holdout <= self.pool_n
        {
            (self.config.calibration.max(1), self.config.holdout)
        } else {
            let cal = self.pool_n.div_ceil(2).min(self.config.calibration.max(1));
            (cal, (self.pool_n - cal).min(self.config.holdout))
        };
        // The pool outlives `self`'s borrow, so rows can be passed while `self` is mutable.
        let pool = self.pool;
        let len = self.input_len;
        let job = |i: usize| {
            (
                &pool[i * len..(i + 1) * len],
                calibration_stream(i),
                Some(i),
            )
        };
        let mut cal = Vec::with_capacity(n_cal);
        let jobs: Vec<_> = order[..n_cal].iter().map(|&i| job(i)).collect();
        self.entropies(model, &jobs, &mut cal)?;
        let mut hold = Vec::with_capacity(n_hold);
        let jobs: Vec<_> = order[n_cal..n_cal + n_hold]
            .iter()
            .map(|&i| job(i))
            .collect();
        self.entropies(model, &jobs, &mut hold)?;
        Ok(calibration_from(&cal, &hold, self.config.frr))
    }

    /// Judges `inputs` (row-major, `input_len` values each) against a calibration.
    pub fn check<C: Classifier + ?Sized>(
        &mut self,
        model: &mut C,
        calibration: &StripCalibration,
        inputs: &[f32],
    ) -> Result<StripReport, StripError> {
        if !inputs.len().is_multiple_of(self.input_len) {
            return Err(StripError::Shape {
                values: inputs.len(),
                input_len: self.input_len,
            });
        }
        let jobs: Vec<_> = inputs
            .chunks_exact(self.input_len)
            .enumerate()
            .map(|(index, input)| (input, check_stream(index), None))
            .collect();
        let mut entropies = Vec::with_capacity(jobs.len());
        self.entropies(model, &jobs, &mut entropies)?;
        let out: Vec<StripInput> = entropies
            .into_iter()
            .enumerate()
            .map(|(index, h)| StripInput {
                index,
                entropy: h,
                flagged: h < calibration.threshold,
            })
            .collect();
        let flagged = out.iter().filter(|i| i.flagged).count();
        Ok(StripReport {
            n: self.config.n,
            blend: self.config.blend,
            frr_target: self.config.frr,
            threshold: calibration.threshold,
            threshold_normal: calibration.threshold_normal,
            frr_measured: calibration.frr_measured,
            holdout_count: calibration.holdout_count,
            calibration: calibration.summary.clone(),
            inputs: out,
            flagged,
            non_finite_rows: self.non_finite_rows,
        })
    }
}

/// Draw streams: calibration inputs and checked inputs never share random copies.
fn calibration_stream(pool_index: usize) -> u64 {
    (1u64 << 62) | pool_index as u64
}

fn check_stream(index: usize) -> u64 {
    index as u64
}

/// Threshold and measured FRR from calibration and held-out clean entropies.
pub fn calibration_from(cal: &[f64], hold: &[f64], frr: f64) -> StripCalibration {
    let threshold = stats::quantile(cal, frr).unwrap_or(0.0);
    let (mean, std) = stats::mean_std(cal).unwrap_or((0.0, 0.0));
    let threshold_normal = mean + std * stats::normal_quantile(frr);
    let min = cal.iter().copied().fold(f64::INFINITY, f64::min);
    let rate = |t: f64| {
        if hold.is_empty() {
            f64::NAN
        } else {
            hold.iter().filter(|&&h| h < t).count() as f64 / hold.len() as f64
        }
    };
    StripCalibration {
        threshold,
        threshold_normal,
        frr_measured: rate(threshold),
        frr_measured_normal: rate(threshold_normal),
        holdout_count: hold.len(),
        summary: CalibrationSummary {
            count: cal.len(),
            mean,
            std,
            min: if min.is_finite() { min } else { 0.0 },
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::classifier::FnClassifier;

    /// 8x8 images; class = a hash of the bright-pixel layout (so blended clean images give
    /// varied predictions), except that a white 3x3 patch in the bottom-right corner forces
    /// class 7 with certainty: a backdoored model.
    pub(crate) fn backdoored(side: usize) -> impl FnMut(&[f32], usize) -> Vec<f32> {
        let protos = prototypes(side);
        move |batch: &[f32], n: usize| {
            let len = side * side;
            let mut out = vec![0.0f32; n * 10];
            for (r, x) in batch.chunks_exact(len).enumerate() {
                let trig = (side - 4..side - 1)
                    .all(|y| (side - 4..side - 1).all(|xx| x[y * side + xx] >= 0.9));
                let row = &mut out[r * 10..(r + 1) * 10];
                if trig {
                    row[7] = 20.0;
                } else {
                    clean_logits(x, side, &protos, row);
                }
            }
            out
        }
    }

    /// A clean synthetic model: nearest prototype, logits = -squared distance to ten fixed
    /// "digit-like" prototypes (drawn like the clean pool, so their corners are dark).
    pub(crate) fn clean_logits(x: &[f32], side: usize, protos: &[f32], row: &mut [f32]) {
        let len = side * side;
        for (c, out) in row.iter_mut().enumerate() {
            let p = &protos[c * len..(c + 1) * len];
            let d: f32 = x.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
            *out = -0.5 * d;
        }
    }

    /// Ten class prototypes: sparse random strokes, the bottom-right corner left dark.
    pub(crate) fn prototypes(side: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(0xC1EA);
        let mut v = vec![0.0f32; side * side * 10];
        for img in v.chunks_exact_mut(side * side) {
            for y in 1..side - 2 {
                for x in 1..side - 2 {
                    if rng.gen_bool(0.3) {
                        img[y * side + x] = rng.gen_range(0.5..1.0);
                    }
                }
            }
        }
        v
    }

    /// "Digit-like" clean images in [0, 1]: a random class's prototype with strokes dropped,
    /// intensities jittered and a few stray pixels, so the data has class structure.
    pub(crate) fn clean_pool(side: usize, count: usize, seed: u64) -> Vec<f32> {
        let protos = prototypes(side);
        let len = side * side;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut v = vec![0.0f32; len * count];
        for img in v.chunks_exact_mut(len) {
            let c = rng.gen_range(0..10);
            let p = &protos[c * len..(c + 1) * len];
            for y in 1..side - 2 {
                for x in 1..side - 2 {
                    let i = y * side + x;
                    if p[i] > 0.0 && rng.gen_bool(0.85) {
                        img[i] = (p[i] * rng.gen_range(0.8..1.2)).min(1.0);
                    } else if rng.gen_bool(0.05) {
                        img[i] = rng.gen_range(0.3..1.0);
                    }
                }
            }
        }
        v
    }

    pub(crate) fn stamp(img: &mut [f32], side: usize) {
        for y in side - 4..side - 1 {
            for x in side - 4..side - 1 {
                img[y * side + x] = 1.0;
            }
        }
    }

    #[test]
    fn strip_flags_triggered_inputs() {
        let side = 8;
        let pool = clean_pool(side, 300, 1);
        let mut model = FnClassifier::new(10, 64, backdoored(side));
        let range = ValueRange::from_data(&pool);
        let config = StripConfig {
            n: 50,
            calibration: 150,
            holdout: 150,
            ..Default::default()
        };
        let mut strip = Strip::new(config, &pool, 64, range).unwrap();
        let cal = strip.calibrate(&mut model).unwrap();
        assert!(cal.threshold > 0.0, "{cal:?}");
        assert!(cal.frr_measured <= 0.05, "{cal:?}");
        // 20 triggered and 20 clean test inputs (fresh images).
        let mut check = clean_pool(side, 40, 2);
        for img in check.chunks_exact_mut(64).take(20) {
            stamp(img, side);
        }
        let report = strip.check(&mut model, &cal, &check).unwrap();
        let flagged_trig = report.inputs[..20].iter().filter(|i| i.flagged).count();
        let flagged_clean = report.inputs[20..].iter().filter(|i| i.flagged).count();
        assert_eq!(flagged_trig, 20, "{report:?}");
        assert!(flagged_clean <= 2, "{report:?}");
        // Deterministic for the same seed.
        let again = strip.check(&mut model, &cal, &check).unwrap();
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            serde_json::to_string(&again).unwrap()
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["blend"], "sum-clip");
        assert!(json["calibration"]["count"].as_u64().unwrap() == 150);
    }

    /// A model that answers NaN where the trigger sits: STRIP reads NaN rows as uncertain, i.e.
    /// clean, so they are counted for the report to say STRIP cannot clear the model.
    #[test]
    fn non_finite_answers_are_counted() {
        let side = 8;
        let pool = clean_pool(side, 60, 4);
        let mut inner = backdoored(side);
        let mut model = FnClassifier::new(10, 64, |b: &[f32], n| {
            let mut out = inner(b, n);
            for (x, row) in b.chunks_exact(64).zip(out.chunks_exact_mut(10)) {
                if x[(side - 2) * side + side - 2] >= 1.0 {
                    row.fill(f32::NAN);
                }
            }
            out
        });
        let config = StripConfig {
            n: 20,
            ..Default::default()
        };
        let mut strip = Strip::new(config, &pool, 64, ValueRange { lo: 0.0, hi: 1.0 }).unwrap();
        let cal = calibration_from(&[1.0, 2.0], &[], 0.01);
        let clean = strip.check(&mut model, &cal, &pool[..64 * 5]).unwrap();
        let mut check = clean_pool(side, 5, 5);
        for img in check.chunks_exact_mut(64) {
            stamp(img, side);
        }
        let triggered = strip.check(&mut model, &cal, &check).unwrap();
        assert!(
            triggered.non_finite_rows > clean.non_finite_rows,
            "{} vs {}",
            triggered.non_finite_rows,
            clean.non_finite_rows
        );
    }

    #[test]
    fn checked_inputs_share_model_calls_and_keep_their_own_entropy() {
        let side = 8;
        let pool = clean_pool(side, 60, 3);
        let mut calls = Vec::new();
        let mut inner = backdoored(side);
        let mut model = FnClassifier::new(10, 64, |b: &[f32], n| {
            calls.push(n);
            inner(b, n)
        });
        let config = StripConfig {
            n: 100,
            ..Default::default()
        };
        let mut strip = Strip::new(config, &pool, 64, ValueRange { lo: 0.0, hi: 1.0 }).unwrap();
        let cal = calibration_from(&[1.0, 2.0], &[], 0.01);
        let report = strip.check(&mut model, &cal, &pool[..64 * 45]).unwrap();
        // 45 inputs x 100 copies in calls of ROWS_PER_CALL rows: 20 inputs per call.
        let per_call = ROWS_PER_CALL / 100;
        let want: Vec<usize> = (0..45)
            .step_by(per_call)
            .map(|i| (45 - i).min(per_call) * 100)
            .collect();
        // Each input alone gives the same value, to the bit.
        let alone: Vec<f64> = (0..45)
            .map(|i| {
                strip
                    .entropy(
                        &mut model,
                        &pool[i * 64..(i + 1) * 64],
                        check_stream(i),
                        None,
                    )
                    .unwrap()
            })
            .collect();
        drop(strip);
        assert_eq!(calls[..want.len()], want[..]);
        let batched: Vec<f64> = report.inputs.iter().map(|i| i.entropy).collect();
        assert_eq!(batched, alone);
    }

    #[test]
    fn bad_settings_are_errors() {
        let pool = vec![0.0f32; 64];
        let r = ValueRange { lo: 0.0, hi: 1.0 };
        let bad_n = StripConfig {
            n: MAX_STRIP_N + 1,
            ..Default::default()
        };
        assert!(Strip::new(bad_n, &pool, 64, r).is_err());
        assert!(Strip::new(StripConfig::default(), &pool, 63, r).is_err());
        assert!(Strip::new(StripConfig::default(), &[], 64, r).is_err());
        let mut s = Strip::new(StripConfig::default(), &pool, 64, r).unwrap();
        let mut m = FnClassifier::new(10, 64, |_b: &[f32], _n| vec![0.0; 3]);
        assert!(s.entropy(&mut m, &pool, 0, None).is_err());
        assert!(matches!(
            s.calibrate(&mut m),
            Err(StripError::TooFewClean { .. })
        ));
    }

    #[test]
    fn blends() {
        let r = ValueRange { lo: 0.0, hi: 1.0 };
        let mut out = [0.0; 3];
        Blend::SumClip.apply(&[0.2, 0.7, 1.0], &[0.3, 0.7, 0.0], &mut out, r);
        assert_eq!(out, [0.5, 1.0, 1.0]);
        Blend::Alpha.apply(&[0.2, 0.6, 1.0], &[0.4, 0.6, 0.0], &mut out, r);
        assert!((out[0] - 0.3).abs() < 1e-6 && out[2] == 0.5);
    }
}
