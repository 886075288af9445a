//! A direct convolution for small kernels (a CNN's first layers: few input channels, a 3x3 or
//! 5x5 kernel), NCHW f32, stride and dilation 1, with the bias and a following ReLU (any `max`
//! with a constant) folded in. tract 0.23 computes every convolution as im2col and a matrix
//! product; for a kernel of a few taps per output the im2col copy and the packing cost as much
//! as the product itself (`perf record` on the MNIST CNN fixture: im2col ~21% and the 8x8
//! product ~25% of the whole inference).
//!
//! The swap must not change a single bit of what the model answers, so the op does the
//! arithmetic tract's matrix product does (`fma_mmm_f32_*` kernels): per output, an accumulator
//! starting at +0.0 takes one fused multiply-add per tap in im2col's order (input channel, kernel
//! row, kernel column), padding taps included as +0.0; then the bias is added (`bias + acc`,
//! skipped when tract skips it: an all-zero bias), then the ReLU as `vmaxps(floor, acc)`, that is
//! `if floor > acc { floor } else { acc }`, so a NaN or -0.0 accumulator passes as tract's fused
//! max passes it. The AVX2 path computes eight outputs of a row per vector, up to four vectors
//! per step, two rows at a time; a row's last, partial vector is computed overlapping the one
//! before (the same outputs again, the same bits). Rows narrower than eight and machines without
//! AVX2 and FMA take the scalar fold, whose `mul_add` rounds once like the vector FMA. The tests
//! compare every bit against tract's own plan, NaN, infinities and signed zeros included (for
//! NaN: the plan tract runs for a symbolic batch; see the tests).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PoolSpec};
use tract_onnx::tract_core::ops::math::Max;
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::plan::swap_nodes;
use super::pool::Pool2x2;
#[cfg(target_arch = "x86_64")]
use super::pool::{fold8, store8};

/// Most taps per output (input channels x kernel height x kernel width) the op takes: above it
/// the matrix product's reuse of each loaded input across eight output channels wins.
const MAX_TAPS: usize = 75;

/// Replaces every tract `Conv` node that `SmallConv` computes identically (see
/// [`SmallConv::for_node`]), with the ReLU after it when there is one; returns how many were
/// replaced. Run it on a typed, decluttered model before `into_optimized`.
pub fn speed_up_convs(model: &mut TypedModel) -> TractResult<usize> {
    swap_nodes(model, "modelvet small conv", SmallConv::for_node)
}

/// Convolution with stride and dilation 1, OIHW weights held by the op, bias and floor folded.
#[derive(Debug, Clone, PartialEq)]
pub struct SmallConv {
    spec: PoolSpec,
    /// `[output channels, input channels, kernel height, kernel width]`.
    weights: Arc<Tensor>,
    /// One per output channel; `None` where tract skips the addition (all zero).
    bias: Option<Vec<f32>>,
    /// The folded ReLU's constant (`max(conv, floor)`).
    floor: Option<f32>,
    /// The folded max pool after the conv (and its ReLU), one `Pool2x2` computes.
    pool: Option<PoolSpec>,
}

impl Eq for SmallConv {}

impl std::hash::Hash for SmallConv {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.spec.hash(state);
        self.weights.hash(state);
        if let Some(bias) = &self.bias {
            bias.iter().for_each(|b| b.to_bits().hash(state));
        }
        self.floor.map(f32::to_bits).hash(state);
        self.pool.hash(state);
    }
}

impl SmallConv {
    /// The op for node `id` when it is a convolution this op computes as tract does, and the node
    /// whose output it replaces (the ReLU's when one follows and is folded, else the conv's).
    fn for_node(model: &TypedModel, id: usize) -> TractResult<Option<(SmallConv, usize)>> {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>() else {
            return Ok(None);
        };
        let &[data, kernel, bias] = &node.inputs[..] else {
            return Ok(None);
        };
        let (data, kernel, bias) = (
            model.outlet_fact(data)?,
            model.outlet_fact(kernel)?,
            model.outlet_fact(bias)?,
        );
        let (Some(weights), Some(bias)) = (kernel.konst.clone(), bias.konst.clone()) else {
            return Ok(None);
        };
        let spec = &conv.pool_spec;
        let f32_dt = f32::datum_type();
        let eligible = conv.q_params.is_none()
            && conv.group == 1
            && conv.kernel_fmt == KernelFormat::OIHW
            && spec.data_format == DataFormat::NCHW
            && data.datum_type == f32_dt
            && data.rank() == 4
            && data.shape[2..].iter().all(|d| d.to_usize().is_ok())
            && weights.datum_type() == f32_dt
            && bias.datum_type() == f32_dt
            && spec.kernel_shape.len() == 2
            && spec.kernel_shape[0] >= 1
            // A one-column kernel is tract's own direct "blocked" conv.
            && spec.kernel_shape[1] >= 2
            && spec.dilations().iter().all(|&d| d == 1)
            && spec.strides().iter().all(|&s| s == 1)
            && weights.shape()
                == [
                    spec.output_channels,
                    spec.input_channels,
                    spec.kernel_shape[0],
                    spec.kernel_shape[1],
                ]
            && (bias.len() == 1 || bias.len() == spec.output_channels)
            && spec.input_channels * spec.kernel_shape[0] * spec.kernel_shape[1] <= MAX_TAPS;
        if !eligible {
            return Ok(None);
        }
        let bias = if bias.is_all_zero()? {
            None
        } else {
            let values = bias.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
            Some(if values.len() == 1 {
                vec![values[0]; spec.output_channels]
            } else {
                values
            })
        };
        let mut op = SmallConv {
            spec: spec.clone(),
            weights,
            bias,
            floor: None,
            pool: None,
        };
        let mut last = id;
        if let Some((floor, relu)) = folded_max(model, id)? {
            op.floor = Some(floor);
            last = relu;
        }
        if let Some((pool, pool_node)) = folded_pool(model, last)? {
            op.pool = Some(pool);
            last = pool_node;
        }
        Ok(Some((op, last)))
    }

    fn conv(&self, input: &Tensor) -> TractResult<Tensor> {
        let &[n, c, h, w] = input.shape() else {
            bail!(
                "SmallConv wants a rank-4 NCHW input, got {:?}",
                input.shape()
            );
        };
        ensure!(
            c == self.spec.input_channels,
            "SmallConv: {c} input channels"
        );
        let [kh, kw] = [self.spec.kernel_shape[0], self.spec.kernel_shape[1]];
        let padded = self.spec.computed_padding(&[h, w]);
        let (ph, pw) = (
            h + padded[0].pad_before + padded[0].pad_after,
            w + padded[1].pad_before + padded[1].pad_after,
        );
        let (oh, ow) = (padded[0].convoluted, padded[1].convoluted);
        ensure!(
            ph + 1 == oh + kh && pw + 1 == ow + kw,
            "SmallConv: padding {padded:?} does not fit a stride-1 convolution"
        );
        let oc = self.spec.output_channels;
        let pool = self
            .pool
            .as_ref()
            .map(|spec| Pool2x2::geometry(spec, oh, ow));
        let (out_h, out_w) = pool.map_or((oh, ow), |geo| (geo.oh, geo.ow));
        let mut output = Tensor::zero::<f32>(&[n, oc, out_h, out_w])?;
        if output.len() == 0 {
            return Ok(output);
        }
        let plan = Plane {
            channels: c,
            h: ph,
            w: pw,
            kh,
            kw,
            oh,
            ow,
        };
        let ram = input.try_as_plain_ram()?;
        let src = ram.as_slice::<f32>()?;
        let weights = self.weights.try_as_plain_ram()?;
        let weights = weights.as_slice::<f32>()?;
        let taps = c * kh * kw;
        let needs_pad = (ph, pw) != (h, w);
        let mut pad = vec![0.0f32; if needs_pad { c * ph * pw } else { 0 }];
        // The conv's plane before its pool; stays in the first-level cache.
        let mut unpooled = vec![0.0f32; if pool.is_some() { oh * ow } else { 0 }];
        let mut out_ram = output.try_as_plain_ram_mut()?;
        let dst = out_ram.as_slice_mut::<f32>()?;
        let chw = c * h * w;
        for (i, out) in dst.chunks_exact_mut(oc * out_h * out_w).enumerate() {
            let image = &src[i * chw..(i + 1) * chw];
            let image = if needs_pad {
                let at = [padded[0].pad_before, padded[1].pad_before];
                copy_padded(image, [h, w], &mut pad, [ph, pw], at);
                &pad[..]
            } else {
                image
            };
            for (o, out_plane) in out.chunks_exact_mut(out_h * out_w).enumerate() {
                let tail = Tail {
                    bias: self.bias.as_ref().map(|b| b[o]),
                    floor: self.floor,
                };
                let weights = &weights[o * taps..][..taps];
                match &pool {
                    Some(geo)
                        if geo.halves()
                            && plan.convolve_halved(image, weights, tail, out_plane) => {}
                    Some(geo) => {
                        plan.convolve(image, weights, tail, &mut unpooled);
                        geo.pool_plane(&unpooled, out_plane);
                    }
                    None => plan.convolve(image, weights, tail, out_plane),
                }
            }
        }
        Ok(output)
    }
}

/// Copies `image`'s planes of `h` x `w` into `padded`'s planes of `ph` x `pw` at row and column
/// `at`, leaving the padding as it is (zeros). An empty map leaves the padded image all zeros, the
/// padding tract convolves too.
fn copy_padded(
    image: &[f32],
    [h, w]: [usize; 2],
    padded: &mut [f32],
    [ph, pw]: [usize; 2],
    at: [usize; 2],
) {
    if h * w == 0 {
        return;
    }
    for (plane, padded_plane) in image
        .chunks_exact(h * w)
        .zip(padded.chunks_exact_mut(ph * pw))
    {
        for (row, to) in plane
            .chunks_exact(w)
            .zip(padded_plane[at[0] * pw..].chunks_mut(pw))
        {
            to[at[1]..at[1] + w].copy_from_slice(row);
        }
    }
}

/// The ReLU after conv node `id` that the op can fold: the conv's only successor, a `max` with a
/// uniform constant (tract fuses it into its matrix product as a scalar max). Its constant and
/// node id.
fn folded_max(model: &TypedModel, id: usize) -> TractResult<Option<(f32, usize)>> {
    let Some(next) = model.single_succ(id)? else {
        return Ok(None);
    };
    if model.outputs.contains(&OutletId::new(id, 0)) {
        return Ok(None);
    }
    let Some(bin) = next.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if !bin.0.is::<Max>() || next.inputs.len() != 2 {
        return Ok(None);
    }
    let other = if next.inputs[0].node == id {
        next.inputs[1]
    } else {
        next.inputs[0]
    };
    let conv_fact = model.outlet_fact(OutletId::new(id, 0))?;
    let Some(konst) = model.outlet_fact(other)?.konst.clone() else {
        return Ok(None);
    };
    let same_shape = model.outlet_fact(OutletId::new(next.id, 0))?.shape == conv_fact.shape;
    if !same_shape || konst.datum_type() != f32::datum_type() || konst.len() != 1 {
        return Ok(None);
    }
    let floor = konst.try_as_plain_ram()?.as_slice::<f32>()?[0];
    Ok(Some((floor, next.id)))
}

/// The max pool after node `last` (the conv or its folded ReLU) that the op can fold: its only
/// successor, a pool `Pool2x2` computes. Its spec and node id.
fn folded_pool(model: &TypedModel, last: usize) -> TractResult<Option<(PoolSpec, usize)>> {
    let Some(next) = model.single_succ(last)? else {
        return Ok(None);
    };
    let Some(pool) = next.op_as::<MaxPool>() else {
        return Ok(None);
    };
    let fact = model.outlet_fact(OutletId::new(last, 0))?;
    let is_output = model.outputs.contains(&OutletId::new(last, 0));
    if next.outputs.len() != 1 || !Pool2x2::replaces(pool, fact) || is_output {
        return Ok(None);
    }
    Ok(Some((pool.pool_spec.clone(), next.id)))
}

/// What follows the taps: bias then floor, as tract's fused ops apply them.
#[derive(Debug, Clone, Copy)]
struct Tail {
    bias: Option<f32>,
    floor: Option<f32>,
}

impl Tail {
    fn apply(self, acc: f32) -> f32 {
        let acc = self.bias.map_or(acc, |b| b + acc);
        match self.floor {
            // vmaxps(floor, acc): floor > acc ? floor : acc.
            Some(floor) if floor > acc => floor,
            _ => acc,
        }
    }
}

/// One image's sizes: `channels` input planes of `h` x `w` (padding included), a `kh` x `kw`
/// kernel, an output plane of `oh` x `ow`.
#[derive(Debug, Clone, Copy)]
struct Plane {
    channels: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
}

impl Plane {
    /// One output channel: `weights` are its `channels * kh * kw` taps.
    fn convolve(&self, image: &[f32], weights: &[f32], tail: Tail, out: &mut [f32]) {
        assert!(image.len() >= self.channels * self.h * self.w);
        assert!(weights.len() == self.channels * self.kh * self.kw);
        assert!(out.len() == self.oh * self.ow);
        assert!(self.oh + self.kh <= self.h + 1 && self.ow + self.kw <= self.w + 1);
        #[cfg(target_arch = "x86_64")]
        if self.ow >= 8
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA are present (checked just above).
            unsafe { self.plane_avx2((image, weights, tail), out, false) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: FMA is present (checked just above).
            unsafe { self.scalar_fma(image, weights, tail, out) };
            return;
        }
        self.scalar(image, weights, tail, out);
    }

    /// `scalar` compiled with FMA, so that `mul_add` is one instruction, not a call to `fmaf`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    fn scalar_fma(&self, image: &[f32], weights: &[f32], tail: Tail, out: &mut [f32]) {
        self.scalar(image, weights, tail, out);
    }

    /// The plane one output at a time (rows narrower than a vector, machines without AVX2).
    #[inline(always)]
    fn scalar(&self, image: &[f32], weights: &[f32], tail: Tail, out: &mut [f32]) {
        for (y, row) in out.chunks_exact_mut(self.ow).enumerate() {
            for (x, o) in row.iter_mut().enumerate() {
                *o = tail.apply(self.output(image, weights, y, x));
            }
        }
    }

    /// One output channel followed by a 2x2 stride-2 max pool without padding (output `(p, q)`
    /// folds conv rows `2p, 2p + 1`, columns `2q, 2q + 1`), pooled in registers: `out` is the
    /// pooled `oh / 2` x `ow / 2` plane. Returns false, leaving `out` alone, where it has no fast
    /// path (no AVX2 and FMA, or fewer than eight pooled columns).
    fn convolve_halved(&self, image: &[f32], weights: &[f32], tail: Tail, out: &mut [f32]) -> bool {
        assert!(out.len() == (self.oh / 2) * (self.ow / 2));
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (image, weights, tail);
        #[cfg(target_arch = "x86_64")]
        if self.ow >= 16
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA are present (checked just above).
            unsafe { self.plane_avx2((image, weights, tail), out, true) };
            return true;
        }
        false
    }

    /// The fold of one output's taps, as tract's matrix product accumulates them.
    #[inline(always)]
    fn output(&self, image: &[f32], weights: &[f32], y: usize, x: usize) -> f32 {
        let mut acc = 0.0f32;
        let mut tap = weights.iter();
        for c in 0..self.channels {
            for ky in 0..self.kh {
                let row = &image[(c * self.h + y + ky) * self.w + x..][..self.kw];
                for (&v, &wt) in row.iter().zip(&mut tap) {
                    acc = wt.mul_add(v, acc);
                }
            }
        }
        acc
    }

    /// `convolve` (or with `halved`, `convolve_halved`) with AVX2 and FMA. A constant kernel
    /// width lets the compiler unroll a kernel row's taps (0: any width).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn plane_avx2(&self, args: Taps, out: &mut [f32], halved: bool) {
        match (self.kw, halved) {
            (2, false) => self.rows_avx2::<2>(args, out),
            (3, false) => self.rows_avx2::<3>(args, out),
            (4, false) => self.rows_avx2::<4>(args, out),
            (5, false) => self.rows_avx2::<5>(args, out),
            (_, false) => self.rows_avx2::<0>(args, out),
            (2, true) => self.halved_rows_avx2::<2>(args, out),
            (3, true) => self.halved_rows_avx2::<3>(args, out),
            (4, true) => self.halved_rows_avx2::<4>(args, out),
            (5, true) => self.halved_rows_avx2::<5>(args, out),
            (_, true) => self.halved_rows_avx2::<0>(args, out),
        }
    }

    /// The plane in steps of up to four vectors of eight outputs, two output rows at a time
    /// (they share the loads of the input rows under both). `KW` is 0 or `self.kw`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn rows_avx2<const KW: usize>(&self, args: Taps, out: &mut [f32]) {
        let ow = self.ow;
        let mut y = 0;
        while y < self.oh {
            let rows = if y + 1 < self.oh { 2 } else { 1 };
            for group in VectorGroups::new(ow, 4) {
                let start = |i: usize| group.start(i);
                let row = &mut out[y * ow..(y + rows) * ow];
                let mut store = |j: usize, vectors: &[_]| {
                    for (i, &v) in vectors.iter().enumerate() {
                        store8(&mut row[j * ow + start(i)..][..8], v);
                    }
                };
                // One instance per vector count and row count, so the step stays in registers.
                macro_rules! step {
                    ($v:literal, $rows:literal) => {
                        self.vectors::<$v, $rows, KW>(args, y, group.starts(), |r| {
                            r.iter().enumerate().for_each(|(j, r)| store(j, r))
                        })
                    };
                }
                match (group.len, rows) {
                    (1, 1) => step!(1, 1),
                    (2, 1) => step!(2, 1),
                    (3, 1) => step!(3, 1),
                    (_, 1) => step!(4, 1),
                    (1, _) => step!(1, 2),
                    (2, _) => step!(2, 2),
                    (3, _) => step!(3, 2),
                    _ => step!(4, 2),
                }
            }
            y += rows;
        }
    }

    /// The pooled plane (`oh / 2` x `ow / 2`, at least eight columns) in steps of eight pooled
    /// outputs, two steps at a time: each step is the conv's rows 2p and 2p + 1 over sixteen
    /// columns (two vectors each), folded by the pool as they leave the registers. A row's last,
    /// partial step overlaps the one before.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn halved_rows_avx2<const KW: usize>(&self, args: Taps, out: &mut [f32]) {
        let (oh, ow) = (self.oh / 2, self.ow / 2);
        for p in 0..oh {
            let row = &mut out[p * ow..][..ow];
            for group in VectorGroups::new(ow, 2) {
                let q = group.start(0);
                if group.len == 1 {
                    let starts = [2 * q, 2 * q + 8];
                    self.vectors::<2, 2, KW>(args, 2 * p, starts, |[r0, r1]| {
                        store8(&mut row[q..][..8], fold8([r0[0], r0[1]], [r1[0], r1[1]]));
                    });
                } else {
                    let u = group.start(1);
                    let starts = [2 * q, 2 * q + 8, 2 * u, 2 * u + 8];
                    self.vectors::<4, 2, KW>(args, 2 * p, starts, |[r0, r1]| {
                        store8(&mut row[q..][..8], fold8([r0[0], r0[1]], [r1[0], r1[1]]));
                        store8(&mut row[u..][..8], fold8([r0[2], r0[3]], [r1[2], r1[3]]));
                    });
                }
            }
        }
    }

    /// Eight outputs from each of `starts` in output rows `y..y + ROWS`, bias and floor applied;
    /// `KW` is 0 or `self.kw`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn vectors<const V: usize, const ROWS: usize, const KW: usize>(
        &self,
        (image, weights, tail): Taps,
        y: usize,
        starts: [usize; V],
        consume: impl FnOnce(&[[std::arch::x86_64::__m256; V]; ROWS]),
    ) {
        use std::arch::x86_64::*;
        let kw = if KW == 0 { self.kw } else { KW };
        let (kh, w) = (self.kh, self.w);
        // Every load below reads eight floats at (c * h + y + r) * w + s + kx with c < channels,
        // r < kh + ROWS - 1, kx < kw, s + 8 <= ow: inside `image`, as these bounds show.
        assert!(kw == self.kw && weights.len() == self.channels * kh * kw);
        assert!(image.len() >= self.channels * self.h * w);
        assert!(y + ROWS <= self.oh && self.oh + kh <= self.h + 1 && self.ow + kw <= w + 1);
        assert!(starts.iter().all(|&s| s + 8 <= self.ow));
        let mut acc = [[_mm256_setzero_ps(); V]; ROWS];
        let base = image.as_ptr();
        for (c, kernel) in weights.chunks_exact(kh * kw).enumerate() {
            // Input row y + r of channel c feeds output row y + j through kernel row r - j; each
            // output still takes its taps in order (kernel row, then column).
            for r in 0..kh + ROWS - 1 {
                let row = (c * self.h + y + r) * w;
                for kx in 0..kw {
                    let mut v = [_mm256_setzero_ps(); V];
                    for (v, &s) in v.iter_mut().zip(&starts) {
                        let at = base.wrapping_add(row + s + kx);
                        // SAFETY: `at..at + 8` lies inside `image` (the assertions above).
                        *v = unsafe { _mm256_loadu_ps(at) };
                    }
                    for (j, acc) in acc.iter_mut().enumerate() {
                        let Some(ky) = r.checked_sub(j).filter(|&ky| ky < kh) else {
                            continue;
                        };
                        let wt = _mm256_set1_ps(kernel[ky * kw + kx]);
                        for (a, &v) in acc.iter_mut().zip(&v) {
                            *a = _mm256_fmadd_ps(wt, v, *a);
                        }
                    }
                }
            }
        }
        let floor = tail.floor.map(|f| _mm256_set1_ps(f));
        let bias = tail.bias.map(|b| _mm256_set1_ps(b));
        for a in acc.iter_mut().flatten() {
            if let Some(b) = bias {
                *a = _mm256_add_ps(b, *a);
            }
            if let Some(f) = floor {
                *a = _mm256_max_ps(f, *a);
            }
        }
        consume(&acc);
    }
}

/// What a vector step reads: one image (padded), one output channel's weights, its tail.
#[cfg(target_arch = "x86_64")]
type Taps<'a> = (&'a [f32], &'a [f32], Tail);

/// Vectors of eight covering `0..n` (`n >= 8`), in groups of up to `per_group`: vector `i`
/// starts at `8i`, the last at `n - 8` when `n` is not a multiple of eight (overlapping the
/// vector before).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
struct VectorGroups {
    n: usize,
    per_group: usize,
    next: usize,
}

/// Up to `per_group` consecutive vectors from vector `first`.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
struct VectorGroup {
    n: usize,
    first: usize,
    len: usize,
}

#[cfg(target_arch = "x86_64")]
impl VectorGroups {
    fn new(n: usize, per_group: usize) -> Self {
        VectorGroups {
            n,
            per_group,
            next: 0,
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Iterator for VectorGroups {
    type Item = VectorGroup;

    fn next(&mut self) -> Option<VectorGroup> {
        let count = self.n.div_ceil(8);
        (self.next < count).then(|| {
            let group = VectorGroup {
                n: self.n,
                first: self.next,
                len: self.per_group.min(count - self.next),
            };
            self.next += group.len;
            group
        })
    }
}

#[cfg(target_arch = "x86_64")]
impl VectorGroup {
    /// Where the group's vector `i` starts.
    fn start(&self, i: usize) -> usize {
        (8 * (self.first + i)).min(self.n.saturating_sub(8))
    }

    /// The starts of the group's first `V` vectors.
    fn starts<const V: usize>(&self) -> [usize; V] {
        std::array::from_fn(|i| self.start(i))
    }
}

impl Op for SmallConv {
    fn name(&self) -> StaticName {
        "modelvet.SmallConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let mut info = self.spec.info();
        info.push(format!(
            "bias: {}, floor: {:?}",
            self.bias.is_some(),
            self.floor
        ));
        if let Some(pool) = &self.pool {
            info.push(format!("then max pool {}", pool.info().join(", ")));
        }
        Ok(info)
    }

    op_as_typed_op!();
}

super::plan::single_input_eval!(SmallConv, conv);

impl TypedOp for SmallConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let conv = self.spec.output_facts(inputs)?;
        match &self.pool {
            Some(pool) => pool.output_facts(&[&conv[0]]),
            None => Ok(conv),
        }
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::plan::tests::{awkward_values, bits, run_plan};
    use tract_onnx::tract_core::ops::cnn::PaddingSpec;

    /// One conv layer as an ONNX model declutters to: Conv, then optionally a ReLU (`max` with a
    /// constant) and a 2x2 max pool.
    struct Layer {
        input: [usize; 4],
        out_channels: usize,
        kernel: [usize; 2],
        padding: PaddingSpec,
        bias: Bias,
        floor: Option<f32>,
        pool: Option<(usize, PaddingSpec)>,
    }

    #[derive(Clone, Copy, Debug)]
    enum Bias {
        Zero,
        Scalar,
        PerChannel,
    }

    impl Layer {
        fn model(&self, symbolic_batch: bool, seed: u64) -> TypedModel {
            let [n, c, h, w] = self.input;
            let [kh, kw] = self.kernel;
            let mut model = TypedModel::default();
            let fact = if symbolic_batch {
                let batch = model.symbols.sym("N");
                f32::fact(&[batch.to_dim(), c.into(), h.into(), w.into()])
            } else {
                f32::fact([n, c, h, w])
            };
            let x = model.add_source("x", fact).expect("source");
            let weights = finite_values(self.out_channels * c * kh * kw, seed, 1.0);
            let weights = Tensor::from_shape(&[self.out_channels, c, kh, kw], &weights).expect("w");
            let w = model.add_const("w", weights).expect("const");
            let bias = match self.bias {
                Bias::Zero => Tensor::zero::<f32>(&[self.out_channels]).expect("zeros"),
                Bias::Scalar => tensor0(0.25f32),
                Bias::PerChannel => {
                    let b = finite_values(self.out_channels, seed + 1, 0.5);
                    Tensor::from_shape(&[self.out_channels], &b).expect("bias")
                }
            };
            let b = model.add_const("b", bias).expect("const");
            let conv = Conv {
                pool_spec: PoolSpec::new(
                    DataFormat::NCHW,
                    tvec![kh, kw],
                    self.padding.clone(),
                    None,
                    Some(tvec![1, 1]),
                    c,
                    self.out_channels,
                ),
                kernel_fmt: KernelFormat::OIHW,
                group: 1,
                q_params: None,
            };
            let mut wire = model.wire_node("conv", conv, &[x, w, b]).expect("conv");
            if let Some(floor) = self.floor {
                let floor = Tensor::from_shape(&[1, 1, 1, 1], &[floor]).expect("floor");
                let floor = model.add_const("floor", floor).expect("const");
                let max = TypedBinOp(Box::new(Max), None);
                wire = model
                    .wire_node("relu", max, &[wire[0], floor])
                    .expect("relu");
            }
            if let Some((stride, padding)) = &self.pool {
                let pool = MaxPool {
                    pool_spec: PoolSpec::new(
                        DataFormat::NCHW,
                        tvec![2, 2],
                        padding.clone(),
                        None,
                        Some(tvec![*stride, *stride]),
                        self.out_channels,
                        self.out_channels,
                    ),
                    with_index_outputs: None,
                };
                wire = model.wire_node("pool", pool, &wire).expect("pool");
            }
            model.select_output_outlets(&wire).expect("outputs");
            model
        }
    }

    /// Values in (-scale, scale), none special.
    fn finite_values(len: usize, seed: u64, scale: f32) -> Vec<f32> {
        awkward_values(len, seed)
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                if v.is_finite() && v.abs() < 10.0 {
                    v / 10.0 * scale
                } else {
                    (i % 7) as f32 / 7.0 * scale - scale / 2.0
                }
            })
            .collect()
    }

    /// Runs the layer through tract's plan and through the swapped one, for a symbolic batch (the
    /// host's plan) and, with finite inputs only, for the concrete shape; returns how many ops
    /// With NaN or infinite inputs tract's
    /// two plans disagree with each other: for a concrete shape it runs the ReLU as its own op,
    /// which turns a NaN into the floor, where its fused max (the symbolic plan) passes the NaN.
    fn compare(layer: &Layer, seed: u64, awkward: bool) {
        let len = layer.input.iter().product();
        let values = if awkward {
            awkward_values(len, seed)
        } else {
            finite_values(len, seed, 2.0)
        };
        let input = Tensor::from_shape(&layer.input, &values).expect("input");
        for symbolic in [true, false] {
            if awkward && !symbolic {
                continue;
            }
            let theirs = layer.model(symbolic, seed);
            let mut ours = theirs.clone();
            assert_eq!(speed_up_convs(&mut ours).expect("swap"), 1, "one conv");
            // Conv, ReLU and pool all folded: the source and the SmallConv are left.
            assert_eq!(ours.nodes().len(), 2, "{:?}", ours.nodes());
            let what = format!(
                "{:?} -> {} k{:?} {:?} {:?} floor {:?} pool {:?} symbolic {symbolic} awkward {awkward}",
                layer.input,
                layer.out_channels,
                layer.kernel,
                layer.padding,
                layer.bias,
                layer.floor,
                layer.pool
            );
            let (ours, theirs) = (run_plan(ours, &input), run_plan(theirs, &input));
            assert_eq!(ours.len(), theirs.len(), "{what}");
            if let Some(i) = (0..ours.len()).find(|&i| ours[i] != theirs[i]) {
                panic!(
                    "{what}: output {i} of {} is {} ({:#x}), tract's {} ({:#x})",
                    ours.len(),
                    f32::from_bits(ours[i]),
                    ours[i],
                    f32::from_bits(theirs[i]),
                    theirs[i]
                );
            }
        }
    }

    #[test]
    fn every_bit_matches_tracts_conv() {
        let paddings = [
            PaddingSpec::Valid,
            PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]),
            PaddingSpec::Explicit(tvec![0, 2], tvec![1, 0]),
            PaddingSpec::SameUpper,
        ];
        let mut cases = 0;
        for (i, (input, out_channels, kernel)) in [
            ([2, 1, 28, 28], 8, [3, 3]),
            ([1, 1, 12, 9], 3, [3, 3]),
            ([3, 2, 10, 17], 16, [3, 3]),
            ([1, 3, 9, 40], 5, [5, 5]),
            ([2, 1, 7, 8], 1, [2, 3]),
            ([1, 2, 11, 6], 4, [3, 2]),
            ([1, 1, 16, 16], 2, [7, 7]),
            ([2, 4, 6, 12], 8, [1, 4]),
        ]
        .into_iter()
        .enumerate()
        {
            for (j, padding) in paddings.iter().enumerate() {
                for (k, bias) in [Bias::Zero, Bias::Scalar, Bias::PerChannel]
                    .into_iter()
                    .enumerate()
                {
                    let floor = [None, Some(0.0), Some(-0.25)][(i + j + k) % 3];
                    let pool = [
                        None,
                        Some((2, PaddingSpec::Valid)),
                        Some((2, PaddingSpec::SameUpper)),
                    ][(i + 2 * j + k) % 3]
                        .clone();
                    let layer = Layer {
                        input,
                        out_channels,
                        kernel,
                        padding: padding.clone(),
                        bias,
                        floor,
                        pool,
                    };
                    let seed = (i * 100 + j * 10 + k) as u64;
                    compare(&layer, seed, false);
                    compare(&layer, seed, true);
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 8 * 4 * 3);
    }

    fn layer(input: [usize; 4], out_channels: usize, kernel: [usize; 2]) -> Layer {
        Layer {
            input,
            out_channels,
            kernel,
            padding: PaddingSpec::Valid,
            bias: Bias::PerChannel,
            floor: Some(0.0),
            pool: Some((2, PaddingSpec::Valid)),
        }
    }

    fn first_conv(model: &mut TypedModel) -> &mut Conv {
        let id = model
            .nodes()
            .iter()
            .position(|n| n.op_is::<Conv>())
            .expect("a conv");
        model.node_mut(id).op_as_mut::<Conv>().expect("conv")
    }

    #[test]
    fn only_convs_it_computes_identically_are_replaced() {
        let base = layer([1, 2, 12, 12], 4, [3, 3]);
        let swapped = |mut model: TypedModel| speed_up_convs(&mut model).expect("swap");
        assert_eq!(swapped(base.model(true, 1)), 1);
        // Too many taps per output (3 x 5 x 5 = 75 is the most).
        assert_eq!(swapped(layer([1, 4, 12, 12], 4, [5, 5]).model(true, 1)), 0);
        // One-column kernels stay tract's own direct conv.
        assert_eq!(swapped(layer([1, 2, 12, 12], 4, [3, 1]).model(true, 1)), 0);
        for change in 0..4 {
            let mut model = base.model(true, 1);
            let conv = first_conv(&mut model);
            match change {
                0 => conv.pool_spec.strides = Some(tvec![2, 2]),
                1 => conv.pool_spec.dilations = Some(tvec![2, 1]),
                2 => conv.q_params = Some(i32::datum_type()),
                _ => conv.kernel_fmt = KernelFormat::HWIO,
            }
            assert_eq!(swapped(model), 0, "change {change}");
        }
        // Weights computed at run time (here: a second input) are not the op's to hold.
        let mut model = base.model(true, 1);
        let w = model
            .add_source("w", f32::fact([4, 2, 3, 3]))
            .expect("source");
        let conv = model
            .nodes()
            .iter()
            .position(|n| n.op_is::<Conv>())
            .expect("conv");
        model
            .add_edge(w, InletId::new(conv, 1))
            .expect("rewire weights");
        assert_eq!(swapped(model), 0);
    }

    #[test]
    fn random_layers_match_tract() {
        // Shapes the grid above does not pick: random sizes, paddings, channels and kernels.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        let mut compared = 0;
        for case in 0..120 {
            let (c, kh, kw) = (1 + next(3), 1 + next(5), 2 + next(4));
            let pads: [usize; 4] = std::array::from_fn(|_| next(3));
            let (h, w) = (kh + 1 + next(18), kw + 1 + next(40));
            let pool = match next(4) {
                0 => None,
                1 => Some((2, PaddingSpec::Valid)),
                2 => Some((2, PaddingSpec::SameUpper)),
                _ => Some((3, PaddingSpec::Valid)),
            };
            let layer = Layer {
                input: [1 + next(3), c, h, w],
                out_channels: 1 + next(12),
                kernel: [kh, kw],
                padding: PaddingSpec::Explicit(tvec![pads[0], pads[1]], tvec![pads[2], pads[3]]),
                bias: [Bias::Zero, Bias::Scalar, Bias::PerChannel][next(3)],
                floor: [None, Some(0.0), Some(0.5)][next(3)],
                pool,
            };
            compare(&layer, case, false);
            compare(&layer, case, true);
            compared += 1;
        }
        assert_eq!(compared, 120);
    }

    #[test]
    fn an_empty_map_under_padding_answers_as_tract_does() {
        // Every output sees only padding: tract answers the bias (and the ReLU of it).
        for input in [[2, 1, 0, 5], [1, 2, 4, 0]] {
            let mut layer = layer(input, 3, [3, 3]);
            layer.padding = PaddingSpec::Explicit(tvec![2, 2], tvec![2, 2]);
            layer.pool = None;
            compare(&layer, 9, false);
        }
    }

    #[test]
    fn relu_and_pool_fold_only_when_the_conv_output_goes_nowhere_else() {
        // The conv's output is also a model output: the conv is swapped, the ReLU and pool stay.
        let mut model = layer([1, 1, 12, 12], 8, [3, 3]).model(true, 2);
        let conv = model
            .nodes()
            .iter()
            .position(|n| n.op_is::<Conv>())
            .expect("conv");
        let mut outputs = model.output_outlets().expect("outputs").to_vec();
        outputs.push(OutletId::new(conv, 0));
        model.select_output_outlets(&outputs).expect("outputs");
        let theirs = model.clone();
        assert_eq!(speed_up_convs(&mut model).expect("swap"), 1);
        assert!(model.nodes().iter().any(|n| n.op_is::<TypedBinOp>()));
        assert!(model.nodes().iter().any(|n| n.op_is::<MaxPool>()));
        let values = finite_values(144, 3, 1.0);
        let input = Tensor::from_shape(&[1, 1, 12, 12], &values).expect("input");
        let run_all = |m: TypedModel| {
            let plan = m
                .into_optimized()
                .and_then(|m| m.into_runnable())
                .expect("plan");
            let outputs = plan.run(tvec![input.clone().into_tvalue()]).expect("run");
            outputs.iter().map(|t| bits(t)).collect::<Vec<_>>()
        };
        assert_eq!(run_all(model), run_all(theirs));
        // A stride-1 pool is tract's vectorised one: not folded.
        let mut stride1 = layer([1, 1, 12, 12], 8, [3, 3]);
        stride1.pool = Some((1, PaddingSpec::Valid));
        let mut model = stride1.model(true, 4);
        assert_eq!(speed_up_convs(&mut model).expect("swap"), 1);
        assert!(model.nodes().iter().any(|n| n.op_is::<MaxPool>()));
    }
}
