//! Small, dependency-free statistics used by the probes: robust location and spread (median,
//! MAD), quantiles, mean and standard deviation, the normal quantile for the STRIP paper's
//! threshold, and accuracy with a confusion matrix for validation probes.
//! NaN values are ignored wherever an order statistic is taken.

/// Neural Cleanse's consistency constant: 1.4826 * MAD estimates the standard deviation of
/// normally distributed data.
pub const MAD_CONSISTENCY: f64 = 1.4826;

fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Median of the non-NaN values; `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let v = sorted_finite(values);
    quantile_sorted(&v, 0.5)
}

/// Median absolute deviation from the median (raw, without the consistency constant).
pub fn mad(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    let dev: Vec<f64> = values
        .iter()
        .filter(|x| !x.is_nan())
        .map(|x| (x - m).abs())
        .collect();
    median(&dev)
}

/// Linear-interpolation quantile (type 7) of already sorted values; `q` clamped to [0, 1].
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Quantile of the non-NaN values.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    quantile_sorted(&sorted_finite(values), q)
}

/// Mean and sample standard deviation (n - 1) of the non-NaN values; std is 0 for one value.
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return Some((mean, 0.0));
    }
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    Some((mean, var.sqrt()))
}

/// Robust z-scores of every value, Neural Cleanse style: |x - median| / (1.4826 * MAD), with
/// the spread floored at `min_spread` so that a set of identical values does not divide by zero.
pub fn anomaly_indices(values: &[f64], min_spread: f64) -> Vec<f64> {
    let (Some(m), Some(d)) = (median(values), mad(values)) else {
        return vec![0.0; values.len()];
    };
    let spread = (MAD_CONSISTENCY * d).max(min_spread).max(f64::MIN_POSITIVE);
    values.iter().map(|x| (x - m) / spread).collect()
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, relative error about
/// 1e-9). `p` outside (0, 1) maps to +/- infinity.
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383_577_518_672_69e2,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    const P_LOW: f64 = 0.02425;
    if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

/// `classes x classes` confusion matrix, rows = true label, columns = prediction. Labels or
/// predictions outside `0..classes` are skipped (they are counted by the caller as errors).
pub fn confusion_matrix(labels: &[usize], predictions: &[usize], classes: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; classes]; classes];
    for (&t, &p) in labels.iter().zip(predictions) {
        if t < classes && p < classes {
            m[t][p] += 1;
        }
    }
    m
}

/// Fraction of predictions equal to their label; `None` for no pairs.
pub fn accuracy(labels: &[usize], predictions: &[usize]) -> Option<f64> {
    let n = labels.len().min(predictions.len());
    if n == 0 {
        return None;
    }
    let hits = labels
        .iter()
        .zip(predictions)
        .filter(|(t, p)| t == p)
        .count();
    Some(hits as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistics() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN]), None);
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 100.0]), Some(1.0));
        assert_eq!(quantile(&[0.0, 10.0], 0.25), Some(2.5));
        assert_eq!(quantile(&[5.0], 0.01), Some(5.0));
    }

    #[test]
    fn mean_and_std() {
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert!((m - 5.0).abs() < 1e-12);
        assert!((s - 2.138089935299395).abs() < 1e-12);
    }

    #[test]
    fn anomaly_index_flags_the_outlier() {
        let v = [0.1, 0.12, 0.09, 0.11, 0.1, 0.95];
        let ai = anomaly_indices(&v, 1e-6);
        assert!(ai[5] > 10.0);
        assert!(ai[..5].iter().all(|x| x.abs() < 2.0));
        assert_eq!(anomaly_indices(&[1.0, 1.0], 0.5), vec![0.0, 0.0]);
    }

    #[test]
    fn normal_quantile_known_values() {
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.01) + 2.326347874).abs() < 1e-6);
        assert!((normal_quantile(0.975) - 1.959963985).abs() < 1e-6);
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn confusion_and_accuracy() {
        let m = confusion_matrix(&[0, 1, 1, 7], &[0, 0, 1, 1], 2);
        assert_eq!(m, vec![vec![1, 0], vec![1, 1]]);
        assert_eq!(accuracy(&[0, 1], &[0, 0]), Some(0.5));
        assert_eq!(accuracy(&[], &[]), None);
    }
}
