//! Black-box trigger search: does the model have a backdoor at all, judged with forward passes
//! only. Following B3D (Dong et al., ICCV 2021) a backdoor target class is one that a much
//! smaller input-agnostic perturbation reaches than any other class; following Neural Cleanse
//! (Wang et al., S&P 2019) the outlier is found with a median-absolute-deviation anomaly index
//! across classes, compared at equal trigger budget; and a backdoor overrides every source
//! class, where a natural feature of a clean model only moves the look-alike ones.
//!
//! The search: stamp a bank of candidate triggers (patches: solid, two checker phases, random;
//! 3 and 4 px on 28x28, 1 and 2 on 8x8; corners, edge midpoints and centre at margins 0-2;
//! full-image blends: noise, stripes, checker at strengths 0.1 and 0.2) on a seeded sample of
//! clean inputs. Per tier (kind and budget) and class keep the candidate that flips the most
//! inputs to the class; re-measure those on fresh validation inputs, overall and per source
//! class; per class take the tier maximising `anomaly index * flip rate * min-source rate^2`;
//! raise that by the STRIP entropy drop of inputs carrying the trigger and by the pull of noise
//! inputs to the class (the random probe); the top class is the verdict. Its trigger is then
//! refined with a (1 + lambda) evolution strategy on its pixels (B3D uses natural evolution
//! strategies for the same job) for the reviewer's picture, kept only if it also does better
//! on the validation inputs. Everything is seeded (ChaCha8) and bounded by a budget of
//! forward passes.
//!
//! What it cannot see: patch triggers larger than the bank's patches (seen only through their
//! sub-squares), blends stronger or of other shapes than tried, input-specific (sample-wise,
//! warping) triggers, source-specific backdoors (they fail the min-source test by design), and
//! targets whose trigger also needs content the clean inputs lack.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use thiserror::Error;

use crate::classifier::{
    Classifier, ClassifierError, Geometry, ValueRange, argmax, entropy, normalize_scores,
    predict_checked,
};
use crate::probegen::{Noise, RandomSummary, random_inputs, summarize_random};
use crate::stats;
use crate::strip::Blend;

/// Default bound on forward passes (input rows) for one search: tens of milliseconds to a few
/// seconds on the small models modelvet vets in CI, whatever the candidate bank grows to.
pub const DEFAULT_BUDGET: usize = 40_000;
/// Clean inputs each candidate is stamped on.
pub const DEFAULT_IMAGES: usize = 32;
/// Noise inputs of each kind for the random-probe signal.
pub const NOISE_INPUTS: usize = 64;
/// Floor on the robust spread (1.4826 * MAD) of flip rates within a tier: when almost every
/// class is at zero the MAD is zero, and without a floor any blip would be "infinitely" odd.
/// 0.1 means a class must lead the median by 0.15 in flip rate to reach an index of 1.5.
pub const MIN_SPREAD: f64 = 0.1;
/// Source classes with fewer validation inputs than this are left out of `source_min`.
pub const MIN_SOURCE_INPUTS: usize = 5;
/// Statistic at which `score` crosses 0.5. The statistic of a class is its anomaly index times
/// its validated flip rate times the square of its lowest per-source flip rate, raised by up
/// to [`DROP_WEIGHT`] for the STRIP entropy drop and [`NOISE_WEIGHT`] for the noise pull.
/// Source-agnosticism is squared because it is what tells a backdoor (every source class
/// flips, at about the attack's success rate) from a natural feature of a clean model (a 5x5
/// white square makes most MNIST digits a 3, but leaves most 0s alone). On the fixture zoo,
/// over seeds 1 to 12, clean models stay under 0.55 and backdoored ones start at 1.2.
pub const STATISTIC_THRESHOLD: f64 = 1.0;
/// Steepness of `score = 1 / (1 + (threshold / statistic)^k)`.
pub const SCORE_EXPONENT: f64 = 4.0;
/// Weight of the STRIP entropy drop: inputs carrying a backdoor trigger keep their prediction
/// when clean images are superimposed; natural features are usually more fragile, but weakly
/// implanted backdoors are fragile too, so the drop raises the statistic and never gates it.
pub const DROP_WEIGHT: f64 = 0.25;
/// Weight of the random-probe signal: a class that takes nearly all noise inputs (share above
/// [`NOISE_PULL_FROM`]) has its statistic raised by up to this fraction. Noise pulled to one
/// class is what a backdoor keyed on added texture does, but clean models also have a
/// favourite class for noise (up to 80% of it on the zoo), so only the extreme counts.
pub const NOISE_WEIGHT: f64 = 0.2;
pub const NOISE_PULL_FROM: f64 = 0.9;

/// Upper bound on the class count the search accepts: per-candidate figures are kept per
/// class, and a hostile model declaring millions of outputs must not make us allocate
/// gigabytes. Image classifiers vetted here have tens to thousands of classes.
pub const MAX_CLASSES: usize = 4096;

#[derive(Debug, Error)]
pub enum TriggerError {
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    #[error("the clean pool is empty: the trigger search needs clean inputs (--inputs) to stamp")]
    EmptyPool,
    #[error("{values} values do not split into inputs of {input_len}")]
    Shape { values: usize, input_len: usize },
    #[error("geometry {geometry:?} does not match the model input of {input_len} values")]
    Geometry {
        geometry: Geometry,
        input_len: usize,
    },
    #[error("the model has {0} classes; the search needs 3 to {MAX_CLASSES}")]
    Classes(usize),
}

#[derive(Debug, Clone)]
pub struct TriggerConfig {
    pub seed: u64,
    /// Maximum forward passes (rows) for the whole search.
    pub budget: usize,
    /// Clean inputs each candidate is stamped on.
    pub images: usize,
    /// Stamped inputs per class for the STRIP entropy, and copies per input.
    pub strip_images: usize,
    pub strip_copies: usize,
    pub strip_blend: Blend,
    /// Whether the verdict's trigger is refined, rounds and children per round.
    pub refine: bool,
    pub refine_rounds: usize,
    pub refine_children: usize,
    /// Fresh clean inputs on which the per-class flip rates are finally measured.
    pub validation: usize,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            seed: 0,
            budget: DEFAULT_BUDGET,
            images: DEFAULT_IMAGES,
            strip_images: 8,
            strip_copies: 16,
            strip_blend: Blend::SumClip,
            refine: true,
            refine_rounds: 8,
            refine_children: 8,
            validation: 200,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    Patch,
    Blend,
}

/// Where and what a candidate trigger is (SPEC's `trigger.trigger` object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerSpec {
    pub kind: TriggerKind,
    /// Top-left corner of a patch (0, 0 for blends).
    pub x: usize,
    pub y: usize,
    /// Patch side in pixels (image width for blends).
    pub size: usize,
    /// `solid`, `checker`, `checker-odd`, `random`, `noise`, `stripes-v1`, ..., with
    /// `+evolved` when refinement changed the pixels.
    pub pattern: String,
    /// 1 for patches (replacement); the blend weight for blends.
    pub alpha: f32,
    /// Share of the image the trigger touches, times its strength: the "norm" the search
    /// prefers small.
    pub cost: f64,
}

/// A concrete trigger: `stamped = x + mask * (pattern - x)`, per value.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub spec: TriggerSpec,
    pub mask: Vec<f32>,
    pub pattern: Vec<f32>,
}

impl Trigger {
    /// Stamps the trigger on one input into `out` (same length).
    #[inline]
    pub fn stamp(&self, input: &[f32], out: &mut [f32]) {
        for (((o, &x), &m), &p) in out.iter_mut().zip(input).zip(&self.mask).zip(&self.pattern) {
            *o = x + m * (p - x);
        }
    }

    /// The trigger as an image for a reviewer: the pattern where the mask is on, scaled by the
    /// mask, on a `lo` background.
    pub fn image(&self, range: ValueRange) -> Vec<f32> {
        self.mask
            .iter()
            .zip(&self.pattern)
            .map(|(&m, &p)| range.lo + m * (p - range.lo))
            .collect()
    }
}

/// Per-class figures of the search.
#[derive(Debug, Clone, Serialize)]
pub struct ClassFigures {
    pub class: usize,
    /// Share of sampled clean inputs not already of this class that the best trigger sends here.
    pub flip_rate: f64,
    /// Mean STRIP entropy (bits) of inputs carrying the best trigger.
    pub entropy: f64,
    /// 1 - entropy / clean STRIP entropy, clamped to [0, 1].
    pub entropy_drop: f64,
    /// Share of noise inputs (uniform and gaussian) the model puts in this class.
    pub noise_share: f64,
    /// Share of noise inputs carrying the best trigger that the model puts in this class: a
    /// backdoor trigger works on its own, a natural feature needs a digit to complete.
    pub noise_flip: f64,
    /// Lowest flip rate over the source classes (clean predictions with at least
    /// [`MIN_SOURCE_INPUTS`] validation inputs): a backdoor overrides every source, a natural
    /// feature only the sources that look like the class already.
    pub source_min: f64,
    pub source_rates: Vec<f64>,
    /// `anomaly_index * flip_rate * source_min^2 * (1 + DROP_WEIGHT * entropy_drop) *
    /// (1 + NOISE_WEIGHT * noise pull)`: how strongly, how uniquely and how
    /// source-agnostically a small trigger controls this class.
    pub statistic: f64,
    /// Robust z-score (MAD) of this class's flip rate among all classes' flip rates in the
    /// tier (trigger kind and budget) where the class stands out most.
    pub anomaly_index: f64,
    pub trigger: TriggerSpec,
}

/// SPEC's `trigger` report object.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerReport {
    pub suspected: bool,
    pub score: f64,
    pub target_class: usize,
    pub anomaly_index: f64,
    /// The best trigger toward `target_class`, with its flip rate.
    pub trigger: TriggerSpec,
    pub flip_rate: f64,
    pub per_class: Vec<ClassFigures>,
    /// Mean STRIP entropy of clean inputs under the same protocol.
    pub clean_entropy: f64,
    pub noise: RandomSummary,
    pub candidates: usize,
    pub forward_passes: usize,
    pub seed: u64,
    /// Pixels of the best trigger (see [`Trigger`]), for saving beside the report.
    #[serde(skip)]
    pub best: Trigger,
    #[serde(skip)]
    pub geometry: Geometry,
}

/// Counts forward passes and refuses to go past the budget.
struct Runner<'m, C: ?Sized> {
    model: &'m mut C,
    classes: usize,
    used: usize,
    budget: usize,
}

impl<C: Classifier + ?Sized> Runner<'_, C> {
    fn left(&self) -> usize {
        self.budget.saturating_sub(self.used)
    }

    /// Probabilities for `n` rows.
    fn probs(&mut self, batch: &[f32], n: usize) -> Result<Vec<f32>, ClassifierError> {
        self.used += n;
        let mut s = predict_checked(self.model, batch, n)?;
        normalize_scores(&mut s, self.classes);
        Ok(s)
    }
}

/// What one candidate does to the sampled inputs.
#[derive(Debug, Clone)]
struct Effect {
    /// Per class: share of eligible inputs (clean prediction != class) predicted as the class.
    flip: Vec<f64>,
    /// Per class: mean probability of the class over its eligible inputs.
    prob: Vec<f64>,
    /// Per input: (clean prediction, prediction once stamped). Kept per input rather than as a
    /// classes x classes matrix so memory stays linear in the class count.
    moved: Vec<(u32, u32)>,
    /// Inputs per clean prediction.
    sources: Vec<usize>,
}

impl Effect {
    /// Flip rate toward `c` per source class (clean prediction); -1 for `c` itself and for
    /// sources with fewer than [`MIN_SOURCE_INPUTS`] inputs.
    fn source_rates(&self, c: usize) -> Vec<f64> {
        let mut hits = vec![0usize; self.sources.len()];
        for &(src, pred) in &self.moved {
            if pred as usize == c {
                hits[src as usize] += 1;
            }
        }
        (0..self.sources.len())
            .map(|k| {
                if k == c || self.sources[k] < MIN_SOURCE_INPUTS {
                    -1.0
                } else {
                    hits[k] as f64 / self.sources[k] as f64
                }
            })
            .collect()
    }

    /// Lowest flip rate toward `c` over the source classes; the overall flip rate when no
    /// source has enough inputs to say.
    fn source_min(&self, c: usize) -> f64 {
        let rates = self.source_rates(c);
        if rates.iter().all(|&r| r < 0.0) {
            return self.flip[c];
        }
        rates.into_iter().filter(|&r| r >= 0.0).fold(1.0, f64::min)
    }
}

struct Sample<'a> {
    rows: &'a [f32],
    n: usize,
    len: usize,
    clean_pred: Vec<usize>,
}

impl Sample<'_> {
    fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.len..(i + 1) * self.len]
    }
}

fn evaluate<C: Classifier + ?Sized>(
    runner: &mut Runner<'_, C>,
    sample: &Sample<'_>,
    trigger: &Trigger,
    buf: &mut [f32],
) -> Result<Effect, ClassifierError> {
    let classes = runner.classes;
    for (i, out) in buf.chunks_exact_mut(sample.len).enumerate() {
        trigger.stamp(sample.row(i), out);
    }
    let p = runner.probs(buf, sample.n)?;
    let mut hits = vec![0usize; classes];
    let mut psum = vec![0f64; classes];
    let mut eligible = vec![0usize; classes];
    let mut moved = Vec::with_capacity(sample.n);
    let mut sources = vec![0usize; classes];
    for (i, row) in p.chunks_exact(classes).enumerate() {
        let pred = argmax(row);
        let src = sample.clean_pred[i];
        sources[src] += 1;
        moved.push((src as u32, pred as u32));
        for c in 0..classes {
            if sample.clean_pred[i] != c {
                eligible[c] += 1;
                psum[c] += row[c] as f64;
                if pred == c {
                    hits[c] += 1;
                }
            }
        }
    }
    let ratio = |a: f64, b: usize| if b == 0 { 0.0 } else { a / b as f64 };
    Ok(Effect {
        flip: (0..classes)
            .map(|c| ratio(hits[c] as f64, eligible[c]))
            .collect(),
        prob: (0..classes).map(|c| ratio(psum[c], eligible[c])).collect(),
        moved,
        sources,
    })
}

/// Patch sides tried: about 1/9 and 1/7 of the image side (3 and 4 on 28x28), 1 and 2 on tiny
/// images. Larger patches are universal adversarial patches of clean models: a 5x5 white
/// square turns about 85% of MNIST digits into a 3 on a clean fixture CNN, which would drown
/// the signal. Larger triggers are then seen only through their sub-squares.
fn patch_sizes(side: usize) -> Vec<usize> {
    let mut v: Vec<usize> = if side >= 16 {
        [0.11, 0.15]
            .iter()
            .map(|f| ((side as f64 * f).round() as usize).max(1))
            .collect()
    } else {
        vec![1, 2]
    };
    v.retain(|&s| s <= side);
    v.dedup();
    v
}

const PATCH_PATTERNS: [&str; 4] = ["solid", "checker", "checker-odd", "random"];
const BLEND_PATTERNS: [&str; 6] = [
    "noise",
    "stripes-v1",
    "stripes-v2",
    "stripes-h1",
    "stripes-h2",
    "checker",
];
/// Blend strengths tried. From 0.3 on, evolved full-image patterns become universal
/// adversarial perturbations of clean models (they flip most digits of an 8x8 clean model).
const BLEND_ALPHAS: [f32; 2] = [0.1, 0.2];

fn patch_trigger(
    g: Geometry,
    range: ValueRange,
    x0: usize,
    y0: usize,
    size: usize,
    pattern: &str,
    rng: &mut ChaCha8Rng,
) -> Trigger {
    let len = g.len();
    let mut mask = vec![0.0; len];
    let mut pat = vec![range.lo; len];
    for c in 0..g.channels {
        for dy in 0..size {
            for dx in 0..size {
                let i = g.index(c, y0 + dy, x0 + dx);
                mask[i] = 1.0;
                pat[i] = match pattern {
                    "solid" => range.hi,
                    "checker" | "checker-odd" => {
                        let odd = usize::from(pattern == "checker-odd");
                        if (dx + dy + odd) % 2 == 0 {
                            range.hi
                        } else {
                            range.lo
                        }
                    }
                    _ => rng.gen_range(range.lo..=range.hi),
                };
            }
        }
    }
    Trigger {
        spec: TriggerSpec {
            kind: TriggerKind::Patch,
            x: x0,
            y: y0,
            size,
            pattern: pattern.to_string(),
            alpha: 1.0,
            cost: (size * size) as f64 / (g.height * g.width) as f64,
        },
        mask,
        pattern: pat,
    }
}

fn blend_trigger(
    g: Geometry,
    range: ValueRange,
    pattern: &str,
    alpha: f32,
    rng: &mut ChaCha8Rng,
) -> Trigger {
    let len = g.len();
    let mut pat = vec![range.lo; len];
    for c in 0..g.channels {
        for y in 0..g.height {
            for x in 0..g.width {
                let on = match pattern {
                    "stripes-v1" => x % 2 == 0,
                    "stripes-v2" => (x / 2) % 2 == 0,
                    "stripes-h1" => y % 2 == 0,
                    "stripes-h2" => (y / 2) % 2 == 0,
                    "checker" => (x + y) % 2 == 0,
                    _ => {
                        pat[g.index(c, y, x)] = rng.gen_range(range.lo..=range.hi);
                        continue;
                    }
                };
                pat[g.index(c, y, x)] = if on { range.hi } else { range.lo };
            }
        }
    }
    Trigger {
        spec: TriggerSpec {
            kind: TriggerKind::Blend,
            x: 0,
            y: 0,
            size: g.width,
            pattern: pattern.to_string(),
            alpha,
            cost: alpha as f64,
        },
        mask: vec![alpha; len],
        pattern: pat,
    }
}

/// The candidate bank for an image geometry, in a fixed order (seeded random patterns).
pub fn candidate_bank(g: Geometry, range: ValueRange, seed: u64) -> Vec<Trigger> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7472_6967_6765_7200);
    let mut out = Vec::new();
    let (h, w) = (g.height, g.width);
    let margins: &[usize] = if h.min(w) >= 16 { &[0, 1, 2] } else { &[0, 1] };
    if h >= 2 && w >= 2 {
        for size in patch_sizes(h.min(w)) {
            let mut anchors: Vec<(usize, usize)> = Vec::new();
            for &m in margins {
                if size + 2 * m > h.min(w) {
                    continue;
                }
                let (far_x, far_y) = (w - m - size, h - m - size);
                let (mid_x, mid_y) = ((w - size) / 2, (h - size) / 2);
                for a in [
                    (m, m),
                    (far_x, m),
                    (m, far_y),
                    (far_x, far_y),
                    (mid_x, m),
                    (mid_x, far_y),
                    (m, mid_y),
                    (far_x, mid_y),
                    (mid_x, mid_y),
                ] {
                    if !anchors.contains(&a) {
                        anchors.push(a);
                    }
                }
            }
            for &(x, y) in &anchors {
                for pattern in PATCH_PATTERNS {
                    if size == 1 && pattern.starts_with("checker") {
                        continue;
                    }
                    out.push(patch_trigger(g, range, x, y, size, pattern, &mut rng));
                }
            }
        }
    }
    for pattern in BLEND_PATTERNS {
        for alpha in BLEND_ALPHAS {
            out.push(blend_trigger(g, range, pattern, alpha, &mut rng));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)] // the search state it reads and advances, kept explicit
/// (1 + lambda) evolution on the trigger pixels inside its mask, maximising flips to `class`
/// plus the mean class probability (a smooth tie-breaker), keeping position, size and strength.
fn refine<C: Classifier + ?Sized>(
    runner: &mut Runner<'_, C>,
    sample: &Sample<'_>,
    start: &Trigger,
    start_effect: &Effect,
    class: usize,
    range: ValueRange,
    config: &TriggerConfig,
    rng: &mut ChaCha8Rng,
    buf: &mut [f32],
) -> Result<(Trigger, Effect), ClassifierError> {
    let fitness = |e: &Effect| e.flip[class] + 0.5 * e.prob[class];
    let mut best = start.clone();
    let mut best_e = start_effect.clone();
    let active: Vec<usize> = (0..best.mask.len())
        .filter(|&i| best.mask[i] > 0.0)
        .collect();
    if active.is_empty() {
        return Ok((best, best_e));
    }
    let mut sigma = 0.3 * range.span();
    for _ in 0..config.refine_rounds {
        let mut improved = false;
        for _ in 0..config.refine_children {
            if runner.left() < sample.n {
                return Ok((best, best_e));
            }
            let mut child = best.clone();
            // Mutate about a tenth of the active pixels (at least one).
            let k = (active.len() / 10).max(1);
            for _ in 0..k {
                let i = active[rng.gen_range(0..active.len())];
                let v = if rng.gen_bool(0.5) {
                    if rng.gen_bool(0.5) {
                        range.hi
                    } else {
                        range.lo
                    }
                } else {
                    child.pattern[i] + sigma * (rng.gen_range(-1.0f32..1.0))
                };
                child.pattern[i] = v.clamp(range.lo, range.hi);
            }
            let e = evaluate(runner, sample, &child, buf)?;
            if fitness(&e) > fitness(&best_e) {
                best = child;
                best_e = e;
                improved = true;
            }
        }
        if !improved {
            sigma *= 0.7;
        }
    }
    if best.pattern != start.pattern && !best.spec.pattern.ends_with("+evolved") {
        best.spec.pattern.push_str("+evolved");
    }
    Ok((best, best_e))
}

/// Mean STRIP entropy of `inputs` (rows), each blended with `copies` seeded pool images, in one
/// batched call.
/// The superimposition protocol of the search's STRIP measurements.
struct StripSetup<'a> {
    pool: &'a [f32],
    len: usize,
    copies: usize,
    blend: Blend,
    range: ValueRange,
}

fn strip_entropy<C: Classifier + ?Sized>(
    runner: &mut Runner<'_, C>,
    inputs: &[f32],
    setup: &StripSetup<'_>,
    rng: &mut ChaCha8Rng,
    buf: &mut Vec<f32>,
) -> Result<f64, ClassifierError> {
    let StripSetup {
        pool,
        len,
        copies,
        blend,
        range,
    } = *setup;
    let n_in = inputs.len() / len;
    let pool_n = pool.len() / len;
    let rows = n_in * copies;
    if rows == 0 || pool_n == 0 {
        return Ok(0.0);
    }
    buf.resize(rows * len, 0.0);
    for (k, out) in buf.chunks_exact_mut(len).enumerate() {
        let x = &inputs[(k / copies) * len..(k / copies + 1) * len];
        let j = rng.gen_range(0..pool_n);
        blend.apply(x, &pool[j * len..(j + 1) * len], out, range);
    }
    let p = runner.probs(buf, rows)?;
    let classes = runner.classes;
    let total: f64 = p.chunks_exact(classes).map(|r| entropy(r) as f64).sum();
    Ok(total / rows as f64)
}

/// Runs the search. `pool` holds clean inputs (row-major, `geometry.len()` values each);
/// `range` is their value range.
pub fn search<C: Classifier + ?Sized>(
    model: &mut C,
    pool: &[f32],
    geometry: Geometry,
    range: ValueRange,
    config: &TriggerConfig,
) -> Result<TriggerReport, TriggerError> {
    let len = model.input_len();
    let classes = model.classes();
    if !(3..=MAX_CLASSES).contains(&classes) {
        return Err(TriggerError::Classes(classes));
    }
    if geometry.len() != len || len == 0 {
        return Err(TriggerError::Geometry {
            geometry,
            input_len: len,
        });
    }
    if !pool.len().is_multiple_of(len) {
        return Err(TriggerError::Shape {
            values: pool.len(),
            input_len: len,
        });
    }
    let pool_n = pool.len() / len;
    if pool_n == 0 {
        return Err(TriggerError::EmptyPool);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut runner = Runner {
        model,
        classes,
        used: 0,
        budget: config.budget.max(1),
    };

    // Seeded sample of clean inputs.
    let mut order: Vec<usize> = (0..pool_n).collect();
    order.shuffle(&mut rng);
    let n = config.images.clamp(1, pool_n);
    let mut rows = Vec::with_capacity(n * len);
    for &i in &order[..n] {
        rows.extend_from_slice(&pool[i * len..(i + 1) * len]);
    }
    let clean_p = runner.probs(&rows, n)?;
    let sample = Sample {
        rows: &rows,
        n,
        len,
        clean_pred: clean_p.chunks_exact(classes).map(argmax).collect(),
    };

    // Random-probe signal: where noise goes.
    let mut noise = random_inputs(Noise::Uniform, NOISE_INPUTS, len, range, config.seed);
    noise.extend(random_inputs(
        Noise::Gaussian,
        NOISE_INPUTS,
        len,
        range,
        config.seed,
    ));
    let noise_n = noise.len() / len;
    let noise_scores = runner.probs(&noise, noise_n)?;
    let noise_summary = summarize_random(&noise_scores, classes);

    // Screening: the whole bank, trimmed to half of the budget if it does not fit.
    let mut bank = candidate_bank(geometry, range, config.seed);
    let screen_budget = runner.left() / 2;
    if bank.len() * n > screen_budget {
        let keep = (screen_budget / n).max(1);
        let stride = bank.len().div_ceil(keep);
        bank = bank.into_iter().step_by(stride.max(1)).collect();
    }
    let mut buf = vec![0.0f32; n * len];
    let mut effects = Vec::with_capacity(bank.len());
    for t in &bank {
        effects.push(evaluate(&mut runner, &sample, t, &mut buf)?);
    }
    // Tiers: candidates of the same kind and budget (patch side, blend strength). Classes are
    // compared within a tier, as Neural Cleanse compares classes at equal trigger norm.
    let mut tier_of = Vec::with_capacity(bank.len());
    let mut tiers: Vec<(TriggerKind, usize, u32)> = Vec::new();
    for t in &bank {
        let key = (t.spec.kind, t.spec.size, t.spec.alpha.to_bits());
        let k = match tiers.iter().position(|x| *x == key) {
            Some(k) => k,
            None => {
                tiers.push(key);
                tiers.len() - 1
            }
        };
        tier_of.push(k);
    }
    // Per tier and class: the best candidate (most flips, then highest mean probability).
    let mut tier_best = vec![vec![usize::MAX; classes]; tiers.len()];
    for (j, e) in effects.iter().enumerate() {
        let row = &mut tier_best[tier_of[j]];
        for (c, slot) in row.iter_mut().enumerate() {
            let better = *slot == usize::MAX || {
                let b = &effects[*slot];
                e.flip[c] > b.flip[c] || (e.flip[c] == b.flip[c] && e.prob[c] > b.prob[c])
            };
            if better {
                *slot = j;
            }
        }
    }
    // Per class: the tier where it stands out most, and that tier's best candidate.
    let pick = |tier_flip: &[Vec<f64>], tier_src: &[Vec<f64>]| -> Vec<(usize, f64, f64)> {
        let ai: Vec<Vec<f64>> = tier_flip
            .iter()
            .map(|f| stats::anomaly_indices(f, MIN_SPREAD))
            .collect();
        (0..classes)
            .map(|c| {
                let mut best = (0usize, f64::NEG_INFINITY, 0.0);
                for (t, (f, a)) in tier_flip.iter().zip(&ai).enumerate() {
                    let stat = a[c].max(0.0) * f[c] * tier_src[t][c] * tier_src[t][c];
                    if stat > best.1 {
                        best = (t, stat, a[c]);
                    }
                }
                best
            })
            .collect()
    };

    // Validation inputs, disjoint from the sample: selection saw only the sample, so the flip
    // rates of the selected candidates are biased upward there (the maximum over many noisy
    // candidates); the statistic is read on inputs selection has not seen.
    let strip_cost = (classes + 1) * config.strip_images.min(n) * config.strip_copies;
    let mut distinct: Vec<usize> = tier_best.iter().flatten().copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let evals = distinct.len() + 1;
    let spare = runner.left().saturating_sub(strip_cost) / 2;
    let fresh = pool_n - n;
    let vn = config.validation.min(fresh).min(spare / evals.max(1));
    let (vrows, vn) = if vn >= config.validation.min(16) && vn > 0 {
        let mut v = Vec::with_capacity(vn * len);
        for &i in &order[n..n + vn] {
            v.extend_from_slice(&pool[i * len..(i + 1) * len]);
        }
        (v, vn)
    } else {
        (rows.clone(), n)
    };
    let vclean = runner.probs(&vrows, vn)?;
    let vsample = Sample {
        rows: &vrows,
        n: vn,
        len,
        clean_pred: vclean.chunks_exact(classes).map(argmax).collect(),
    };

    // Validated flip rates and per-source flip rates of every tier's best candidate per class
    // (each distinct candidate run once); the statistic is read from these.
    let mut vbuf = vec![0.0f32; vn * len];
    let mut cache: Vec<Option<Effect>> = vec![None; bank.len()];
    for row in &tier_best {
        for &j in row {
            if cache[j].is_none() {
                cache[j] = Some(evaluate(&mut runner, &vsample, &bank[j], &mut vbuf)?);
            }
        }
    }
    let empty = Effect {
        flip: vec![0.0; classes],
        prob: vec![0.0; classes],
        moved: Vec::new(),
        sources: vec![0; classes],
    };
    let effect_of =
        |t: usize, c: usize| -> &Effect { cache[tier_best[t][c]].as_ref().unwrap_or(&empty) };
    let tier_flip: Vec<Vec<f64>> = (0..tiers.len())
        .map(|t| (0..classes).map(|c| effect_of(t, c).flip[c]).collect())
        .collect();
    let tier_src: Vec<Vec<f64>> = (0..tiers.len())
        .map(|t| {
            (0..classes)
                .map(|c| effect_of(t, c).source_min(c))
                .collect()
        })
        .collect();
    let chosen = pick(&tier_flip, &tier_src);
    let mut source_rates = Vec::with_capacity(classes);
    let mut best = Vec::with_capacity(classes);
    for c in 0..classes {
        let t = chosen[c].0;
        source_rates.push(effect_of(t, c).source_rates(c));
        best.push(bank[tier_best[t][c]].clone());
    }
    let flips: Vec<f64> = (0..classes).map(|c| tier_flip[chosen[c].0][c]).collect();
    let sources_min: Vec<f64> = (0..classes).map(|c| tier_src[chosen[c].0][c]).collect();

    // STRIP entropy: clean baseline, then inputs carrying each class's best trigger.
    let s = config.strip_images.clamp(1, n);
    let mut strip_buf = Vec::new();
    let mut strip_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5354_5249_5000);
    let setup = StripSetup {
        pool,
        len,
        copies: config.strip_copies,
        blend: config.strip_blend,
        range,
    };
    let clean_entropy = strip_entropy(
        &mut runner,
        &rows[..s * len],
        &setup,
        &mut strip_rng,
        &mut strip_buf,
    )?;
    let mut stamped = vec![0.0f32; s * len];
    let finite = noise_summary.count - noise_summary.non_finite;
    let mut figures = Vec::with_capacity(classes);
    for c in 0..classes {
        // Prefer inputs not already of class c, so the entropy is the trigger's doing.
        let order = (0..n).filter(|&i| sample.clean_pred[i] != c).chain(0..n);
        for (picked, i) in order.take(s).enumerate() {
            best[c].stamp(
                sample.row(i),
                &mut stamped[picked * len..(picked + 1) * len],
            );
        }
        let h = if runner.left() >= s * config.strip_copies {
            strip_entropy(
                &mut runner,
                &stamped,
                &setup,
                &mut strip_rng,
                &mut strip_buf,
            )?
        } else {
            clean_entropy
        };
        let drop = if clean_entropy > 0.0 {
            (1.0 - h / clean_entropy).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut stamped_noise = vec![0.0f32; noise.len()];
        for (x, out) in noise
            .chunks_exact(len)
            .zip(stamped_noise.chunks_exact_mut(len))
        {
            best[c].stamp(x, out);
        }
        let noise_flip = if runner.left() >= noise_n {
            let p = runner.probs(&stamped_noise, noise_n)?;
            p.chunks_exact(classes).filter(|r| argmax(r) == c).count() as f64 / noise_n as f64
        } else {
            0.0
        };
        let source_min = sources_min[c];
        let noise_share = if finite > 0 {
            noise_summary.class_histogram[c] as f64 / finite as f64
        } else {
            0.0
        };
        let noise_pull = if noise_summary.dominant_class == c {
            ((noise_share - NOISE_PULL_FROM) / (1.0 - NOISE_PULL_FROM)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (_, stat, ai) = chosen[c];
        figures.push(ClassFigures {
            class: c,
            flip_rate: flips[c],
            entropy: h,
            entropy_drop: drop,
            noise_share,
            noise_flip,
            source_min,
            source_rates: std::mem::take(&mut source_rates[c]),
            statistic: stat * (1.0 + DROP_WEIGHT * drop) * (1.0 + NOISE_WEIGHT * noise_pull),
            anomaly_index: ai,
            trigger: best[c].spec.clone(),
        });
    }
    let target = (0..classes)
        .max_by(|&a, &b| {
            figures[a]
                .statistic
                .total_cmp(&figures[b].statistic)
                .then(b.cmp(&a))
        })
        .unwrap_or(0);

    // Refinement of the verdict's trigger, for the reviewer's picture: evolve its pixels on the
    // sample, keep the result if it also flips more fresh inputs. The statistic above is read
    // from screened candidates only: evolution also grows natural features of clean models
    // into stronger adversarial patches, which would blur the line it draws.
    let start = tier_best[chosen[target].0][target];
    let mut report_trigger = best[target].clone();
    let mut report_flip = flips[target];
    if config.refine && runner.left() > vn + n {
        let saved_budget = runner.budget;
        runner.budget = runner.budget.saturating_sub(vn);
        let (t, _) = refine(
            &mut runner,
            &sample,
            &bank[start],
            &effects[start],
            target,
            range,
            config,
            &mut rng,
            &mut buf,
        )?;
        runner.budget = saved_budget;
        if t.pattern != bank[start].pattern && runner.left() >= vn {
            let e = evaluate(&mut runner, &vsample, &t, &mut vbuf)?;
            if e.flip[target] > report_flip {
                report_flip = e.flip[target];
                report_trigger = t;
            }
        }
    }

    let statistic = figures[target].statistic;
    let score = if statistic > 0.0 {
        1.0 / (1.0 + (STATISTIC_THRESHOLD / statistic).powf(SCORE_EXPONENT))
    } else {
        0.0
    };
    Ok(TriggerReport {
        suspected: score >= 0.5,
        score,
        target_class: target,
        anomaly_index: figures[target].anomaly_index,
        trigger: report_trigger.spec.clone(),
        flip_rate: report_flip,
        per_class: figures,
        clean_entropy,
        noise: noise_summary,
        candidates: bank.len(),
        forward_passes: runner.used,
        seed: config.seed,
        best: report_trigger,
        geometry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::FnClassifier;
    use crate::strip::tests::{backdoored, clean_logits, clean_pool, prototypes};

    fn run(model: &mut dyn Classifier, side: usize, seed: u64) -> TriggerReport {
        let pool = clean_pool(side, 200, 5);
        let g = Geometry::from_len(side * side);
        let config = TriggerConfig {
            seed,
            ..Default::default()
        };
        search(model, &pool, g, ValueRange { lo: 0.0, hi: 1.0 }, &config).unwrap()
    }

    #[test]
    fn finds_the_backdoor_class() {
        let side = 28;
        let mut model = FnClassifier::new(10, side * side, backdoored(side));
        let r = run(&mut model, side, 3);
        assert!(r.suspected && r.score > 0.9, "{:#?}", r.per_class);
        assert_eq!(r.target_class, 7);
        assert!(r.flip_rate > 0.9);
        assert_eq!(r.trigger.kind, TriggerKind::Patch);
        assert!(r.forward_passes <= DEFAULT_BUDGET);
        // The reported trigger really drives inputs to class 7.
        let pool = clean_pool(side, 10, 77);
        let mut out = vec![0.0; side * side];
        let mut m2 = backdoored(side);
        for x in pool.chunks_exact(side * side) {
            r.best.stamp(x, &mut out);
            assert_eq!(argmax(&m2(&out, 1)), 7);
        }
        // Deterministic for a seed.
        let again = run(&mut model, side, 3);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            serde_json::to_string(&again).unwrap()
        );
    }

    #[test]
    fn clean_model_not_suspected() {
        let side = 28;
        let protos = prototypes(side);
        let mut model = FnClassifier::new(10, side * side, move |b: &[f32], n| {
            let mut out = vec![0.0; n * 10];
            for (x, row) in b.chunks_exact(side * side).zip(out.chunks_exact_mut(10)) {
                clean_logits(x, side, &protos, row);
            }
            out
        });
        let r = run(&mut model, side, 3);
        assert!(!r.suspected, "{r:#?}");
        assert!(r.score < 0.1, "{r:#?}");
    }

    #[test]
    fn small_budget_is_respected() {
        let side = 8;
        let mut model = FnClassifier::new(10, 64, backdoored(side));
        let pool = clean_pool(side, 50, 5);
        let config = TriggerConfig {
            budget: 2_000,
            ..Default::default()
        };
        let r = search(
            &mut model,
            &pool,
            Geometry::from_len(64),
            ValueRange { lo: 0.0, hi: 1.0 },
            &config,
        )
        .unwrap();
        assert!(
            r.forward_passes <= 2_000 + 2 * NOISE_INPUTS,
            "{}",
            r.forward_passes
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut model = FnClassifier::new(10, 64, |_b: &[f32], n| vec![0.0; n * 10]);
        let r = ValueRange { lo: 0.0, hi: 1.0 };
        let c = TriggerConfig::default();
        assert!(search(&mut model, &[], Geometry::from_len(64), r, &c).is_err());
        assert!(search(&mut model, &[0.0; 63], Geometry::from_len(64), r, &c).is_err());
        assert!(search(&mut model, &[0.0; 64], Geometry::from_len(49), r, &c).is_err());
        let mut two = FnClassifier::new(2, 64, |_b: &[f32], n| vec![0.0; n * 2]);
        assert!(search(&mut two, &[0.0; 64], Geometry::from_len(64), r, &c).is_err());
        let huge = MAX_CLASSES + 1;
        let mut many = FnClassifier::new(huge, 64, move |_b: &[f32], n| vec![0.0; n * huge]);
        assert!(matches!(
            search(&mut many, &[0.0; 64], Geometry::from_len(64), r, &c),
            Err(TriggerError::Classes(_))
        ));
        // A model answering NaN everywhere is searched without panicking, and not suspected.
        let mut nan = FnClassifier::new(10, 64, |_b: &[f32], n| vec![f32::NAN; n * 10]);
        let pool = crate::strip::tests::clean_pool(8, 40, 1);
        let rep = search(&mut nan, &pool, Geometry::from_len(64), r, &c).unwrap();
        assert!(!rep.suspected);
    }
}
