//! Generated probe inputs. `random`: seeded uniform and gaussian noise inside the clean value
//! range, and a summary of where the model sends it (a backdoored model often pulls noise to its
//! target class). `edge`: hostile and degenerate inputs (NaN, infinities, denormals, a wrong
//! shape, an empty batch) described as data, for the runner to feed through its host and record
//! whether the model answered, errored, crashed or hung.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::classifier::{ValueRange, argmax};

/// Upper bound on generated probe values (`count * input_len`), so a hostile model header that
/// declares a gigantic input cannot make us allocate without limit (256 MiB of f32).
pub const MAX_PROBE_FLOATS: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Noise {
    /// Uniform in [lo, hi].
    Uniform,
    /// Normal around the middle of the range with a quarter of its span as deviation, clipped.
    Gaussian,
}

/// `count` noise inputs of `input_len` values, row-major, inside `range`; the same seed gives
/// the same values. `count` is reduced so the result stays under [`MAX_PROBE_FLOATS`].
pub fn random_inputs(
    noise: Noise,
    count: usize,
    input_len: usize,
    range: ValueRange,
    seed: u64,
) -> Vec<f32> {
    let count = MAX_PROBE_FLOATS
        .checked_div(input_len)
        .map_or(0, |cap| count.min(cap));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(match noise {
        Noise::Uniform => 1,
        Noise::Gaussian => 2,
    });
    let mut out = vec![0.0f32; count * input_len];
    let (lo, hi) = (range.lo, range.hi);
    match noise {
        Noise::Uniform => out.iter_mut().for_each(|v| *v = rng.gen_range(lo..=hi)),
        Noise::Gaussian => {
            let mid = 0.5 * (lo + hi);
            let sd = 0.25 * range.span();
            out.iter_mut()
                .for_each(|v| *v = (mid + sd * standard_normal(&mut rng)).clamp(lo, hi));
        }
    }
    out
}

/// Box-Muller; keeps us off an extra dependency for one distribution.
fn standard_normal<R: Rng>(rng: &mut R) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.r#gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// SPEC's `random` probe object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RandomSummary {
    pub count: usize,
    pub class_histogram: Vec<u64>,
    pub dominant_class: usize,
    pub dominant_share: f64,
    /// Outputs with at least one NaN or infinite score; they are left out of the histogram.
    pub non_finite: usize,
}

/// Summarises the scores (`n * classes`, logits or probabilities) a model gave to noise.
pub fn summarize_random(scores: &[f32], classes: usize) -> RandomSummary {
    let mut hist = vec![0u64; classes];
    let mut non_finite = 0;
    let mut count = 0;
    if classes > 0 {
        for row in scores.chunks_exact(classes) {
            count += 1;
            if row.iter().any(|v| !v.is_finite()) {
                non_finite += 1;
                continue;
            }
            hist[argmax(row)] += 1;
        }
    }
    let (dominant_class, top) =
        hist.iter().enumerate().fold(
            (0, 0),
            |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) },
        );
    let finite = count - non_finite;
    RandomSummary {
        count,
        class_histogram: hist,
        dominant_class,
        dominant_share: if finite == 0 {
            0.0
        } else {
            top as f64 / finite as f64
        },
        non_finite,
    }
}

/// One edge case: `n` inputs whose values are `data` (which may deliberately not be
/// `n * input_len` long: the runner must feed it as is and report the outcome).
#[derive(Debug, Clone)]
pub struct EdgeCase {
    pub name: &'static str,
    pub n: usize,
    pub data: Vec<f32>,
    /// True when the data does not match the model's declared shape on purpose.
    pub malformed: bool,
    pub description: &'static str,
}

/// What happened when an edge case was fed (SPEC's `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeOutcome {
    Ok,
    Error,
    Crash,
    Timeout,
}

/// SPEC's entry in `edge.cases`.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeResult {
    pub name: String,
    pub outcome: EdgeOutcome,
    pub message: String,
}

/// The edge cases for a model taking inputs of `input_len` values, with clean values in
/// `range`. Each is one input unless said otherwise.
pub fn edge_cases(input_len: usize, range: ValueRange) -> Vec<EdgeCase> {
    let fill = |v: f32| vec![v; input_len];
    // Every other value NaN: a model that masks or skips NaN still sees some.
    let half_nan: Vec<f32> = (0..input_len)
        .map(|i| if i % 2 == 0 { f32::NAN } else { range.lo })
        .collect();
    vec![
        EdgeCase {
            name: "zeros",
            n: 1,
            data: fill(0.0),
            malformed: false,
            description: "all values 0",
        },
        EdgeCase {
            name: "ones",
            n: 1,
            data: fill(1.0),
            malformed: false,
            description: "all values 1",
        },
        EdgeCase {
            name: "lo",
            n: 1,
            data: fill(range.lo),
            malformed: false,
            description: "all values at the bottom of the clean range",
        },
        EdgeCase {
            name: "hi",
            n: 1,
            data: fill(range.hi),
            malformed: false,
            description: "all values at the top of the clean range",
        },
        EdgeCase {
            name: "extreme",
            n: 1,
            data: fill(f32::MAX),
            malformed: false,
            description: "all values f32::MAX (overflows to inf in most layers)",
        },
        EdgeCase {
            name: "nan",
            n: 1,
            data: fill(f32::NAN),
            malformed: false,
            description: "all values NaN",
        },
        EdgeCase {
            name: "half-nan",
            n: 1,
            data: half_nan,
            malformed: false,
            description: "every other value NaN",
        },
        EdgeCase {
            name: "inf",
            n: 1,
            data: fill(f32::INFINITY),
            malformed: false,
            description: "all values +inf",
        },
        EdgeCase {
            name: "neg-inf",
            n: 1,
            data: fill(f32::NEG_INFINITY),
            malformed: false,
            description: "all values -inf",
        },
        EdgeCase {
            name: "denormal",
            n: 1,
            data: fill(1e-40),
            malformed: false,
            description: "all values subnormal (slow paths on some CPUs)",
        },
        EdgeCase {
            name: "wrong-shape",
            n: 1,
            data: vec![range.lo; input_len.saturating_sub(1).max(1) + usize::from(input_len <= 1)],
            malformed: true,
            description: "one input with one value missing (or one extra when the input is a scalar)",
        },
        EdgeCase {
            name: "empty-batch",
            n: 0,
            data: Vec::new(),
            malformed: false,
            description: "a batch of zero inputs",
        },
    ]
}

/// Judges a finished in-process (or in-sandbox) call: the right number of scores is `ok`, a
/// reported error is `error`. Crashes and timeouts are decided by the runner's supervisor.
pub fn edge_outcome<E: std::fmt::Display>(
    case: &EdgeCase,
    result: &Result<Vec<f32>, E>,
    classes: usize,
) -> EdgeResult {
    let (outcome, message) = match result {
        Ok(scores) if scores.len() == case.n * classes => {
            let nf = scores.iter().filter(|v| !v.is_finite()).count();
            let msg = if nf > 0 {
                format!("{} scores, {nf} non-finite", scores.len())
            } else {
                format!("{} scores", scores.len())
            };
            (EdgeOutcome::Ok, msg)
        }
        Ok(scores) => (
            EdgeOutcome::Error,
            format!(
                "{} scores for {} inputs of {classes} classes",
                scores.len(),
                case.n
            ),
        ),
        Err(e) => (EdgeOutcome::Error, e.to_string()),
    };
    EdgeResult {
        name: case.name.to_string(),
        outcome,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_in_range_and_seeded() {
        let r = ValueRange { lo: 0.0, hi: 1.0 };
        for noise in [Noise::Uniform, Noise::Gaussian] {
            let a = random_inputs(noise, 50, 64, r, 9);
            let b = random_inputs(noise, 50, 64, r, 9);
            let c = random_inputs(noise, 50, 64, r, 10);
            assert_eq!(a.len(), 50 * 64);
            assert_eq!(a, b);
            assert_ne!(a, c);
            assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
            let mean = a.iter().sum::<f32>() / a.len() as f32;
            assert!((mean - 0.5).abs() < 0.05, "{mean}");
        }
        assert!(random_inputs(Noise::Uniform, 10, 0, r, 0).is_empty());
        assert_eq!(
            random_inputs(Noise::Uniform, usize::MAX, 1 << 20, r, 0).len(),
            MAX_PROBE_FLOATS
        );
    }

    #[test]
    fn summary_counts_classes_and_non_finite() {
        let scores = [0.1, 0.9, 0.8, 0.2, 0.0, 5.0, f32::NAN, 0.0];
        let s = summarize_random(&scores, 2);
        assert_eq!(s.count, 4);
        assert_eq!(s.class_histogram, vec![1, 2]);
        assert_eq!(s.dominant_class, 1);
        assert!((s.dominant_share - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.non_finite, 1);
    }

    #[test]
    fn edge_cases_cover_the_list() {
        let cases = edge_cases(784, ValueRange { lo: 0.0, hi: 1.0 });
        let names: Vec<_> = cases.iter().map(|c| c.name).collect();
        for n in [
            "zeros",
            "ones",
            "lo",
            "hi",
            "nan",
            "inf",
            "neg-inf",
            "denormal",
            "wrong-shape",
            "empty-batch",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        for c in &cases {
            assert_eq!(c.malformed, c.data.len() != c.n * 784, "{}", c.name);
        }
        let scalar = edge_cases(1, ValueRange { lo: 0.0, hi: 1.0 });
        let ws = scalar.iter().find(|c| c.name == "wrong-shape").unwrap();
        assert_eq!(ws.data.len(), 2);
        let ok: Result<Vec<f32>, String> = Ok(vec![0.0; 10]);
        assert_eq!(edge_outcome(&cases[0], &ok, 10).outcome, EdgeOutcome::Ok);
        let err: Result<Vec<f32>, String> = Err("shape".into());
        assert_eq!(
            edge_outcome(&cases[0], &err, 10).outcome,
            EdgeOutcome::Error
        );
    }
}
