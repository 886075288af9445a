//! A faster 2x2 max pool for strides other than 1 (the LeNet-style "halve the map" pool), NCHW
//! f32. tract 0.23 computes that pool one output at a time, with two bounds checks per tap, and
//! it was about half of a small CNN's inference time (`perf record` on the MNIST CNN fixture);
//! its stride-1 pool is already vectorised and stays tract's.
//!
//! The swap must not change a single bit of what the model answers: the op takes the same taps
//! in the same order (row by row, left to right) and folds them the same way tract does,
//! `m = m.max(tap)` from `f32::MIN`, so NaN taps are skipped, a window of NaNs gives `f32::MIN`
//! and padding never counts. Windows whose four taps are all inside the map (every window, on an
//! unpadded map) are computed eight at a time with AVX2, which folds with the same rule
//! (`max(tap, m)` keeps `m` unless `tap > m`); the border and machines without AVX2 use the
//! scalar fold. The tests compare every bit against tract's own pool, NaN, infinities and signed
//! zeros included.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PoolSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::plan::swap_nodes;

/// Replaces every tract `MaxPool` node that `Pool2x2` computes identically (see
/// [`Pool2x2::replaces`]); returns how many were replaced. Run it on a typed, decluttered model
/// before `into_optimized`.
pub fn speed_up_pools(model: &mut TypedModel) -> TractResult<usize> {
    swap_nodes(model, "modelvet pool", |model, id| {
        let node = model.node(id);
        let (Some(pool), &[input]) = (node.op_as::<MaxPool>(), &node.inputs[..]) else {
            return Ok(None);
        };
        if node.outputs.len() != 1 || !Pool2x2::replaces(pool, model.outlet_fact(input)?) {
            return Ok(None);
        }
        let spec = pool.pool_spec.clone();
        Ok(Some((Pool2x2 { spec }, id)))
    })
}

/// 2x2 max pool, NCHW f32, any stride but (1, 1), any padding, no dilation, no index output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pool2x2 {
    spec: PoolSpec,
}

impl Pool2x2 {
    pub(super) fn replaces(pool: &MaxPool, input: &TypedFact) -> bool {
        let spec = &pool.pool_spec;
        pool.with_index_outputs.is_none()
            && spec.data_format == DataFormat::NCHW
            && input.datum_type == f32::datum_type()
            && input.rank() == 4
            && spec.kernel_shape[..] == [2, 2]
            && spec.dilations().iter().all(|&d| d == 1)
            && spec.strides().len() == 2
            && spec.strides().iter().all(|&s| s >= 1)
            && spec.strides()[..] != [1, 1]
    }

    /// The plane geometry of this pool over `h` x `w` maps.
    pub(super) fn geometry(spec: &PoolSpec, h: usize, w: usize) -> Geometry {
        let strides = spec.strides();
        let padded = spec.computed_padding(&[h, w]);
        Geometry {
            h,
            w,
            oh: padded[0].convoluted,
            ow: padded[1].convoluted,
            sh: strides[0],
            sw: strides[1],
            pt: padded[0].pad_before,
            pl: padded[1].pad_before,
        }
    }

    fn pool(&self, input: &Tensor) -> TractResult<Tensor> {
        let &[n, c, h, w] = input.shape() else {
            bail!("Pool2x2 wants a rank-4 NCHW input, got {:?}", input.shape());
        };
        let geo = Self::geometry(&self.spec, h, w);
        let mut output = Tensor::zero::<f32>(&[n, c, geo.oh, geo.ow])?;
        let planes = input.try_as_plain_ram()?;
        let src = planes.as_slice::<f32>()?;
        {
            let mut out_ram = output.try_as_plain_ram_mut()?;
            let dst = out_ram.as_slice_mut::<f32>()?;
            if geo.oh * geo.ow > 0 && h * w > 0 {
                for (plane, out) in src
                    .chunks_exact(h * w)
                    .zip(dst.chunks_exact_mut(geo.oh * geo.ow))
                {
                    geo.pool_plane(plane, out);
                }
            }
        }
        Ok(output)
    }
}

/// One plane's sizes: input `h` x `w`, output `oh` x `ow`, strides, padding before.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    h: usize,
    w: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
    sh: usize,
    sw: usize,
    pt: usize,
    pl: usize,
}

impl Geometry {
    /// Whether the pool halves the map with no padding, every window inside it: output (p, q)
    /// folds rows 2p and 2p + 1, columns 2q and 2q + 1.
    pub(super) fn halves(&self) -> bool {
        (self.sh, self.sw, self.pt, self.pl) == (2, 2, 0, 0)
            && (self.oh, self.ow) == (self.h / 2, self.w / 2)
    }

    /// The outputs `[lo, hi)` of a row whose two column taps are both inside the map.
    fn interior_columns(&self) -> (usize, usize) {
        let lo = self.pl.div_ceil(self.sw).min(self.ow);
        // Last tap of output ox: ox * sw - pl + 1 <= w - 1.
        let hi = if self.w + self.pl >= 2 {
            ((self.w + self.pl - 2) / self.sw + 1).min(self.ow)
        } else {
            0
        };
        (lo, hi.max(lo))
    }

    pub(super) fn pool_plane(&self, plane: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.sw == 2 && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present (checked just above).
            unsafe { self.pool_plane_s2_avx2(plane, out) };
            return;
        }
        self.rows(plane, out, interior_row);
    }

    /// `pool_plane` for stride-2 columns, the row loop compiled with AVX2 so that the vector
    /// rows inline into it.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn pool_plane_s2_avx2(&self, plane: &[f32], out: &mut [f32]) {
        self.rows(plane, out, |r0, r1, out, first_tap, sw| {
            let done = interior_row_s2_avx2(r0, r1, out, first_tap);
            finish_row(r0, r1, out, first_tap, sw, done);
        });
    }

    /// The plane row by row: border windows folded one by one, the interior of each row by
    /// `interior(r0, r1, outputs, first_tap, sw)`.
    #[inline(always)]
    fn rows(
        &self,
        plane: &[f32],
        out: &mut [f32],
        interior: impl Fn(&[f32], &[f32], &mut [f32], usize, usize),
    ) {
        let (lo, hi) = self.interior_columns();
        for (oy, row_out) in out.chunks_exact_mut(self.ow).enumerate() {
            let top = (oy * self.sh) as isize - self.pt as isize;
            let rows_inside = top >= 0 && top + 1 < self.h as isize;
            if !rows_inside || lo >= hi {
                for (ox, o) in row_out.iter_mut().enumerate() {
                    *o = self.window(plane, top, ox);
                }
                continue;
            }
            for ox in (0..lo).chain(hi..self.ow) {
                row_out[ox] = self.window(plane, top, ox);
            }
            let r0 = &plane[top as usize * self.w..][..self.w];
            let r1 = &plane[(top as usize + 1) * self.w..][..self.w];
            let first_tap = lo * self.sw - self.pl;
            interior(r0, r1, &mut row_out[lo..hi], first_tap, self.sw);
        }
    }

    /// tract's fold over one window, taps bounds-checked.
    fn window(&self, plane: &[f32], top: isize, ox: usize) -> f32 {
        let mut m = f32::MIN;
        let left = (ox * self.sw) as isize - self.pl as isize;
        for iy in [top, top + 1] {
            if iy < 0 || iy >= self.h as isize {
                continue;
            }
            for ix in [left, left + 1] {
                if ix < 0 || ix >= self.w as isize {
                    continue;
                }
                m = m.max(plane[iy as usize * self.w + ix as usize]);
            }
        }
        m
    }
}

/// Outputs of one row whose windows lie inside the map: output `k` folds `r0[t]`, `r0[t + 1]`,
/// `r1[t]`, `r1[t + 1]` with `t = first_tap + k * sw`.
fn interior_row(r0: &[f32], r1: &[f32], out: &mut [f32], first_tap: usize, sw: usize) {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if sw == 2 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above).
        done = unsafe { interior_row_s2_avx2(r0, r1, out, first_tap) };
    }
    finish_row(r0, r1, out, first_tap, sw, done);
}

/// The scalar fold for the outputs of an interior row from `done` on.
#[inline(always)]
fn finish_row(r0: &[f32], r1: &[f32], out: &mut [f32], first_tap: usize, sw: usize, done: usize) {
    for (k, o) in out.iter_mut().enumerate().skip(done) {
        let t = first_tap + k * sw;
        *o = f32::MIN.max(r0[t]).max(r0[t + 1]).max(r1[t]).max(r1[t + 1]);
    }
}

/// Stride 2: eight outputs per step from sixteen consecutive taps of each row. Returns how many
/// outputs it wrote; the caller finishes the row (it does only when a row is shorter than its
/// windows claim, which the caller never passes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn interior_row_s2_avx2(r0: &[f32], r1: &[f32], out: &mut [f32], first_tap: usize) -> usize {
    // Each step reads taps t..t + 16 of both rows, all inside the windows of its eight outputs.
    // A row's last, partial step is taken as the row's last eight outputs, overlapping the step
    // before (those outputs are computed twice, to the same bits); a row of fewer than eight
    // reads its taps from a copy padded with f32::MIN and keeps only the outputs it owns.
    let n = out.len();
    let last = (n >= 8 && !n.is_multiple_of(8)).then_some(n.saturating_sub(8));
    for k in (0..n / 8).map(|step| step * 8).chain(last) {
        let t = first_tap + 2 * k;
        let (Some(row0), Some(row1)) = (r0.get(t..t + 16), r1.get(t..t + 16)) else {
            return k;
        };
        store8(&mut out[k..k + 8], pool8(row0, row1));
    }
    if n >= 8 || n == 0 {
        return n;
    }
    let taps = 2 * n;
    let (Some(row0), Some(row1)) = (
        r0.get(first_tap..first_tap + taps),
        r1.get(first_tap..first_tap + taps),
    ) else {
        return 0;
    };
    let (mut pad0, mut pad1) = ([f32::MIN; 16], [f32::MIN; 16]);
    pad0[..taps].copy_from_slice(row0);
    pad1[..taps].copy_from_slice(row1);
    let mut full = [0.0f32; 8];
    store8(&mut full, pool8(&pad0, &pad1));
    out.copy_from_slice(&full[..n]);
    n
}

/// The eight windows over sixteen taps of two rows (stride 2), in output order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn pool8(row0: &[f32], row1: &[f32]) -> std::arch::x86_64::__m256 {
    fold8(
        [load8(&row0[..8]), load8(&row0[8..])],
        [load8(&row1[..8]), load8(&row1[8..])],
    )
}

/// The eight 2x2 windows over two rows of sixteen taps each, `[taps 0..8, taps 8..16]` of the
/// top row and of the bottom one, in output order: tract's fold, `m.max(tap)` from `f32::MIN`
/// over top-left, top-right, bottom-left, bottom-right.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn fold8(
    [a0, b0]: [std::arch::x86_64::__m256; 2],
    [a1, b1]: [std::arch::x86_64::__m256; 2],
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let floor = _mm256_set1_ps(f32::MIN);
    // Left taps (even positions) and right taps (odd) of eight windows, in the lane order
    // [0 1 4 5 | 2 3 6 7] that the permute below undoes.
    let left0 = _mm256_shuffle_ps::<0b10_00_10_00>(a0, b0);
    let right0 = _mm256_shuffle_ps::<0b11_01_11_01>(a0, b0);
    let left1 = _mm256_shuffle_ps::<0b10_00_10_00>(a1, b1);
    let right1 = _mm256_shuffle_ps::<0b11_01_11_01>(a1, b1);
    // maxps(tap, m) is `tap > m ? tap : m`: what `m.max(tap)` gives for a non-NaN m.
    let mut m = _mm256_max_ps(left0, floor);
    m = _mm256_max_ps(right0, m);
    m = _mm256_max_ps(left1, m);
    m = _mm256_max_ps(right1, m);
    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(m)))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn load8(from: &[f32]) -> std::arch::x86_64::__m256 {
    assert!(from.len() >= 8);
    // SAFETY: `from` holds at least eight f32s (asserted); the load has no alignment requirement.
    unsafe { std::arch::x86_64::_mm256_loadu_ps(from.as_ptr()) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn store8(to: &mut [f32], v: std::arch::x86_64::__m256) {
    assert!(to.len() >= 8);
    // SAFETY: `to` holds at least eight f32s (asserted); the store has no alignment requirement.
    unsafe { std::arch::x86_64::_mm256_storeu_ps(to.as_mut_ptr(), v) }
}

impl Op for Pool2x2 {
    fn name(&self) -> StaticName {
        "modelvet.MaxPool2x2".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(self.spec.info())
    }

    op_as_typed_op!();
}

super::plan::single_input_eval!(Pool2x2, pool);

impl TypedOp for Pool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.spec.output_facts(inputs)
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::plan::tests::{awkward_values, bits, run_plan};
    use tract_onnx::tract_core::ops::cnn::PaddingSpec;

    fn spec(strides: [usize; 2], padding: PaddingSpec, channels: usize) -> PoolSpec {
        PoolSpec::new(
            DataFormat::NCHW,
            tvec![2, 2],
            padding,
            None,
            Some(tvec![strides[0], strides[1]]),
            channels,
            channels,
        )
    }

    /// tract's own MaxPool, planned for the concrete shape (its optimised path).
    fn tract_pool(spec: &PoolSpec, input: &Tensor) -> Tensor {
        let mut model = TypedModel::default();
        let source = model
            .add_source("x", f32::fact(input.shape()))
            .expect("source");
        let op = MaxPool {
            pool_spec: spec.clone(),
            with_index_outputs: None,
        };
        let out = model.wire_node("pool", op, &[source]).expect("wire");
        model.select_output_outlets(&out).expect("outputs");
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .expect("plan");
        let mut outputs = plan.run(tvec![input.clone().into_tvalue()]).expect("run");
        outputs.remove(0).into_tensor()
    }

    #[test]
    fn every_bit_matches_tracts_pool() {
        let paddings = [
            PaddingSpec::Valid,
            PaddingSpec::SameUpper,
            PaddingSpec::SameLower,
            PaddingSpec::Explicit(tvec![1, 0], tvec![0, 1]),
            PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]),
            // ONNX ceil_mode: the last window may hang past the map and its padding.
            PaddingSpec::ExplicitOnnxPool(tvec![0, 0], tvec![0, 0], true),
            PaddingSpec::ExplicitOnnxPool(tvec![1, 0], tvec![0, 1], true),
        ];
        let shapes = [
            [2, 3, 26, 26],
            [1, 2, 27, 41],
            [3, 1, 5, 40],
            [1, 1, 2, 2],
            [1, 1, 1, 7],
            [2, 2, 9, 1],
        ];
        let (mut cases, mut empty) = (0, 0);
        for (si, shape) in shapes.iter().enumerate() {
            for strides in [[2, 2], [2, 3], [3, 2], [3, 3], [1, 2], [2, 1]] {
                for (pi, padding) in paddings.iter().enumerate() {
                    let values = awkward_values(shape.iter().product(), (si * 100 + pi) as u64);
                    let input = Tensor::from_shape(shape, &values).expect("input");
                    let spec = spec(strides, padding.clone(), shape[1]);
                    let ours = Pool2x2 { spec: spec.clone() }.pool(&input).expect("ours");
                    if ours.len() == 0 {
                        // tract's own pool panics on an empty output; ours returns it.
                        empty += 1;
                        continue;
                    }
                    let theirs = tract_pool(&spec, &input);
                    assert_eq!(
                        ours.shape(),
                        theirs.shape(),
                        "{shape:?} {strides:?} {padding:?}"
                    );
                    assert_eq!(
                        bits(&ours),
                        bits(&theirs),
                        "{shape:?} strides {strides:?} {padding:?}"
                    );
                    cases += 1;
                }
            }
        }
        assert_eq!(cases + empty, 6 * 6 * 7);
        assert!(cases > 200, "{cases} compared");
    }

    #[test]
    fn the_vector_rows_match_the_scalar_fold() {
        // Rows of several eight-output steps and of every tail length, with every special value.
        for seed in 0..40 {
            let (w, first_tap) = (64 + seed as usize, seed as usize % 3);
            let r0 = awkward_values(w, seed);
            let r1 = awkward_values(w, seed + 1000);
            let outputs = (w - first_tap) / 2;
            let mut fast = vec![0.0f32; outputs];
            interior_row(&r0, &r1, &mut fast, first_tap, 2);
            let slow: Vec<f32> = (0..outputs)
                .map(|k| {
                    let t = first_tap + 2 * k;
                    [r0[t], r0[t + 1], r1[t], r1[t + 1]]
                        .into_iter()
                        .fold(f32::MIN, f32::max)
                })
                .collect();
            let as_bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(as_bits(&fast), as_bits(&slow), "seed {seed}");
        }
    }

    #[test]
    fn only_pools_it_computes_identically_are_replaced() {
        let fact = f32::fact([1, 4, 26, 26]);
        let pool = |strides: [usize; 2], kernel: usize| MaxPool {
            pool_spec: PoolSpec::new(
                DataFormat::NCHW,
                tvec![kernel, kernel],
                PaddingSpec::Valid,
                None,
                Some(tvec![strides[0], strides[1]]),
                4,
                4,
            ),
            with_index_outputs: None,
        };
        assert!(Pool2x2::replaces(&pool([2, 2], 2), &fact));
        assert!(Pool2x2::replaces(&pool([3, 1], 2), &fact));
        assert!(
            !Pool2x2::replaces(&pool([1, 1], 2), &fact),
            "stride 1 is tract's SIMD path"
        );
        assert!(!Pool2x2::replaces(&pool([2, 2], 3), &fact));
        let mut indexed = pool([2, 2], 2);
        indexed.with_index_outputs = Some(i64::datum_type());
        assert!(!Pool2x2::replaces(&indexed, &fact));
        assert!(!Pool2x2::replaces(
            &pool([2, 2], 2),
            &f64::fact([1, 4, 26, 26])
        ));
        let mut nhwc = pool([2, 2], 2);
        nhwc.pool_spec.data_format = DataFormat::NHWC;
        assert!(!Pool2x2::replaces(&nhwc, &fact));
    }

    #[test]
    fn the_cnn_fixtures_answer_bit_for_bit_as_before() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models");
        for name in ["mnist_cnn_clean_a", "mnist_cnn_patch_bl"] {
            let model = tract_onnx::onnx()
                .model_for_path(dir.join(format!("{name}.onnx")))
                .expect("fixture");
            let typed = model
                .into_typed()
                .and_then(|m| m.into_decluttered())
                .expect("typed");
            let mut swapped = typed.clone();
            assert_eq!(
                speed_up_pools(&mut swapped).expect("swap"),
                1,
                "{name}: one pool"
            );
            let batch = 37;
            let values: Vec<f32> = awkward_values(batch * 28 * 28, 7)
                .into_iter()
                .map(|v| if v.is_finite() { v.abs().min(1.0) } else { 1.0 })
                .collect();
            let input = Tensor::from_shape(&[batch, 1, 28, 28], &values).expect("input");
            assert_eq!(run_plan(swapped, &input), run_plan(typed, &input), "{name}");
        }
    }
}
