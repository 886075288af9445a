//! The black-box view of a model that STRIP, the trigger search and the probe generators work
//! through: a batch of flat f32 inputs in, one row of class scores per input out. The runner
//! implements it over its sandboxed host; tests implement it with closures or tract in-process.
//! Also: output normalisation (softmax when the model emits logits), argmax, entropy, and the
//! image geometry and value range that stamping and blending need.

use thiserror::Error;

/// Rows whose scores are all non-negative and sum to 1 within this tolerance are taken as
/// probabilities already; anything else is treated as logits and softmaxed.
pub const PROBABILITY_TOLERANCE: f32 = 1e-3;

#[derive(Debug, Error)]
pub enum ClassifierError {
    #[error(
        "model returned {got} scores for a batch of {n} inputs with {classes} classes; expected {expected}"
    )]
    OutputShape {
        n: usize,
        classes: usize,
        got: usize,
        expected: usize,
    },
    #[error("batch of {got} values is not {n} inputs of {input_len} values")]
    InputShape {
        n: usize,
        input_len: usize,
        got: usize,
    },
    #[error("model failed: {0}")]
    Model(String),
}

/// A model seen only through forward passes.
pub trait Classifier {
    /// Number of output classes (scores per input).
    fn classes(&self) -> usize;
    /// Number of f32 values in one flattened input.
    fn input_len(&self) -> usize;
    /// Scores for `n` inputs laid out row-major in `batch` (`n * input_len` values): returns
    /// `n * classes` scores, row-major. Logits or probabilities; callers normalise.
    fn predict(&mut self, batch: &[f32], n: usize) -> Result<Vec<f32>, ClassifierError>;
}

impl<T: Classifier + ?Sized> Classifier for &mut T {
    fn classes(&self) -> usize {
        (**self).classes()
    }
    fn input_len(&self) -> usize {
        (**self).input_len()
    }
    fn predict(&mut self, batch: &[f32], n: usize) -> Result<Vec<f32>, ClassifierError> {
        (**self).predict(batch, n)
    }
}

impl<T: Classifier + ?Sized> Classifier for Box<T> {
    fn classes(&self) -> usize {
        (**self).classes()
    }
    fn input_len(&self) -> usize {
        (**self).input_len()
    }
    fn predict(&mut self, batch: &[f32], n: usize) -> Result<Vec<f32>, ClassifierError> {
        (**self).predict(batch, n)
    }
}

/// A classifier made from a closure `(batch, n) -> scores`: synthetic models in tests and
/// quick adapters in callers.
pub struct FnClassifier<F> {
    classes: usize,
    input_len: usize,
    f: F,
}

impl<F> FnClassifier<F>
where
    F: FnMut(&[f32], usize) -> Vec<f32>,
{
    pub fn new(classes: usize, input_len: usize, f: F) -> Self {
        FnClassifier {
            classes,
            input_len,
            f,
        }
    }
}

impl<F> Classifier for FnClassifier<F>
where
    F: FnMut(&[f32], usize) -> Vec<f32>,
{
    fn classes(&self) -> usize {
        self.classes
    }
    fn input_len(&self) -> usize {
        self.input_len
    }
    fn predict(&mut self, batch: &[f32], n: usize) -> Result<Vec<f32>, ClassifierError> {
        Ok((self.f)(batch, n))
    }
}

/// Runs one batched forward pass and checks both shapes, so callers can index rows safely.
pub fn predict_checked<C: Classifier + ?Sized>(
    model: &mut C,
    batch: &[f32],
    n: usize,
) -> Result<Vec<f32>, ClassifierError> {
    let input_len = model.input_len();
    let classes = model.classes();
    if batch.len() != n.saturating_mul(input_len) {
        return Err(ClassifierError::InputShape {
            n,
            input_len,
            got: batch.len(),
        });
    }
    let out = model.predict(batch, n)?;
    let expected = n.saturating_mul(classes);
    if out.len() != expected {
        return Err(ClassifierError::OutputShape {
            n,
            classes,
            got: out.len(),
            expected,
        });
    }
    Ok(out)
}

/// What a model's output rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Logits,
    Probabilities,
}

/// True when the row is non-negative, finite and sums to 1 within [`PROBABILITY_TOLERANCE`].
pub fn is_probability_row(row: &[f32]) -> bool {
    let mut sum = 0.0f32;
    for &v in row {
        if !v.is_finite() || v < 0.0 {
            return false;
        }
        sum += v;
    }
    (sum - 1.0).abs() <= PROBABILITY_TOLERANCE
}

/// Probabilities if every row of the batch is a probability row, else logits.
pub fn detect_output_kind(scores: &[f32], classes: usize) -> OutputKind {
    if classes == 0 || scores.is_empty() {
        return OutputKind::Probabilities;
    }
    if scores.chunks_exact(classes).all(is_probability_row) {
        OutputKind::Probabilities
    } else {
        OutputKind::Logits
    }
}

/// Numerically stable softmax in place. A row with a non-finite score becomes uniform: it says
/// nothing about the class, and NaN must not leak into entropies and thresholds.
pub fn softmax_in_place(row: &mut [f32]) {
    if row.is_empty() {
        return;
    }
    if row.iter().any(|v| !v.is_finite()) {
        let u = 1.0 / row.len() as f32;
        row.iter_mut().for_each(|v| *v = u);
        return;
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// Turns a batch of scores into probabilities in place (softmax unless the whole batch is
/// already probability rows). Returns what the rows were.
pub fn normalize_scores(scores: &mut [f32], classes: usize) -> OutputKind {
    let kind = detect_output_kind(scores, classes);
    if kind == OutputKind::Logits {
        scores.chunks_exact_mut(classes).for_each(softmax_in_place);
    }
    kind
}

/// Index of the largest score, ignoring NaN; 0 for an empty or all-NaN row.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    let mut seen = false;
    for (i, &v) in row.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if !seen || v > best_v {
            best = i;
            best_v = v;
            seen = true;
        }
    }
    best
}

/// Shannon entropy in bits of a probability row; zero probabilities contribute nothing. A row
/// with non-finite entries counts as uniform (maximum entropy).
pub fn entropy(row: &[f32]) -> f32 {
    if row.iter().any(|p| !p.is_finite()) {
        return (row.len().max(1) as f32).log2();
    }
    let mut h = 0.0f32;
    for &p in row {
        if p > 0.0 {
            h -= p * p.log2();
        }
    }
    h.max(0.0)
}

/// Image layout of a flattened input, channel-first as ONNX models take it:
/// `index = c * height * width + y * width + x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Geometry {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl Geometry {
    /// Square single-channel images when the length has an integer square root (MNIST 784 is
    /// 28x28, digits 64 is 8x8), else one row of `len` values.
    pub fn from_len(len: usize) -> Geometry {
        let s = (len as f64).sqrt().round() as usize;
        if s > 0 && s * s == len {
            Geometry {
                height: s,
                width: s,
                channels: 1,
            }
        } else {
            Geometry {
                height: 1,
                width: len,
                channels: 1,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flat index of pixel (x, y) in channel c.
    #[inline]
    pub fn index(&self, c: usize, y: usize, x: usize) -> usize {
        c * self.height * self.width + y * self.width + x
    }
}

/// The range clean inputs live in, learned from clean data (e.g. [0, 1] for scaled pixels).
/// Blends saturate at `hi`; probes and stamped patches stay inside it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ValueRange {
    pub lo: f32,
    pub hi: f32,
}

impl ValueRange {
    /// Min and max over the finite values of `data`; [0, 1] when there are none, and a unit
    /// width when all values are equal, so that the range is never empty.
    pub fn from_data(data: &[f32]) -> ValueRange {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        for &v in data {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if !lo.is_finite() || !hi.is_finite() {
            return ValueRange { lo: 0.0, hi: 1.0 };
        }
        if hi <= lo {
            hi = lo + 1.0;
        }
        ValueRange { lo, hi }
    }

    #[inline]
    pub fn span(&self) -> f32 {
        self.hi - self.lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_only_when_logits() {
        let mut probs = vec![0.2, 0.8, 0.5, 0.5];
        assert_eq!(normalize_scores(&mut probs, 2), OutputKind::Probabilities);
        assert_eq!(probs, vec![0.2, 0.8, 0.5, 0.5]);
        let mut logits = vec![0.0, 0.0, 10.0, -10.0];
        assert_eq!(normalize_scores(&mut logits, 2), OutputKind::Logits);
        assert!((logits[0] - 0.5).abs() < 1e-6);
        assert!(logits[2] > 0.999);
    }

    #[test]
    fn entropy_in_bits_and_nan_safe() {
        assert!((entropy(&[0.5, 0.5]) - 1.0).abs() < 1e-6);
        assert_eq!(entropy(&[1.0, 0.0, 0.0]), 0.0);
        assert!((entropy(&[f32::NAN, 0.0, 0.0, 0.0]) - 2.0).abs() < 1e-6);
        let mut row = [f32::NAN, 1.0];
        softmax_in_place(&mut row);
        assert_eq!(row, [0.5, 0.5]);
    }

    #[test]
    fn argmax_ignores_nan() {
        assert_eq!(argmax(&[f32::NAN, 0.1, 0.3, 0.2]), 2);
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn geometry_from_len() {
        assert_eq!(Geometry::from_len(784).height, 28);
        assert_eq!(Geometry::from_len(64).width, 8);
        let g = Geometry::from_len(10);
        assert_eq!((g.height, g.width), (1, 10));
    }

    #[test]
    fn shapes_are_checked() {
        let mut m = FnClassifier::new(3, 2, |_b: &[f32], n| vec![0.0; n * 2]);
        assert!(matches!(
            predict_checked(&mut m, &[0.0; 4], 2),
            Err(ClassifierError::OutputShape { .. })
        ));
        assert!(matches!(
            predict_checked(&mut m, &[0.0; 3], 2),
            Err(ClassifierError::InputShape { .. })
        ));
    }
}
