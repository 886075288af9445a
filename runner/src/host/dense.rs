//! A dense layer with few outputs (a classifier's head: `[batch, features] x [features, classes]`,
//! classes at most 16), f32, with the bias after it folded in. tract 0.23 plans such a product
//! with the constant weights as the matrix's rows, 64 to a kernel tile, so ten classes fill ten
//! of the tile's 64 rows, and it packs the activations before every run (`perf record` on the
//! MNIST CNN fixture: the product and the packing were a quarter of the inference).
//!
//! The swap must not change a single bit of what the model answers, so the op does the
//! arithmetic tract's matrix product does (`*_mmm_f32_*` kernels): per output, an accumulator
//! starting at +0.0 takes one fused multiply-add per feature in order, then the bias is added
//! (`bias + acc`, as the fused per-row add does). The AVX2 path holds each row's classes in one
//! or two vectors of eight (the weights padded with zeros to a multiple of eight, the padding
//! lanes never stored) and runs four rows at a time (the last few one by one), so one load of a
//! weight row serves four rows. Machines without AVX2 and FMA take the scalar fold, whose `mul_add` rounds once like the
//! vector FMA. The tests compare every bit against tract's own plan.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::Add;

use super::plan::swap_nodes;

/// Most outputs per row the op takes: two vectors of eight. (At 32, a 64-feature layer ran ~5%
/// slower than tract, measured on the digits MLP fixture.)
const MAX_OUTPUTS: usize = 16;

/// Rows computed together by the AVX2 path.
#[cfg(target_arch = "x86_64")]
const ROWS: usize = 4;

/// Replaces every tract `EinSum` node that `Dense` computes identically (see
/// [`Dense::for_node`]), with the bias addition after it when there is one; returns how many
/// were replaced. Run it on a typed, decluttered model before `into_optimized`.
pub fn speed_up_dense(model: &mut TypedModel) -> TractResult<usize> {
    swap_nodes(model, "modelvet dense", Dense::for_node)
}

/// `[batch, ...features] x [...features, outputs]`, the weights held by the op.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    features: usize,
    outputs: usize,
    /// `[features, padded outputs]`, each row's outputs zero-padded to a multiple of eight.
    weights: Arc<Vec<f32>>,
    /// One per output, added after the product.
    bias: Option<Vec<f32>>,
}

impl Eq for Dense {}

impl std::hash::Hash for Dense {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.features.hash(state);
        self.outputs.hash(state);
        self.weights.iter().for_each(|w| w.to_bits().hash(state));
        if let Some(bias) = &self.bias {
            bias.iter().for_each(|b| b.to_bits().hash(state));
        }
    }
}

impl Dense {
    /// The op for node `id` when it is a product this op computes as tract does, and the node
    /// whose output it replaces (the bias addition's when one follows and is folded).
    fn for_node(model: &TypedModel, id: usize) -> TractResult<Option<(Dense, usize)>> {
        let node = model.node(id);
        let Some(einsum) = node.op_as::<EinSum>() else {
            return Ok(None);
        };
        let &[data, weights] = &node.inputs[..] else {
            return Ok(None);
        };
        let (data, weights) = (model.outlet_fact(data)?, model.outlet_fact(weights)?);
        let Some(konst) = weights.konst.clone() else {
            return Ok(None);
        };
        let f32_dt = f32::datum_type();
        let Some(outputs_first) = dense_layout(&einsum.axes.to_string()) else {
            return Ok(None);
        };
        if einsum.q_params.is_some()
            || einsum.operating_dt != f32_dt
            || data.datum_type != f32_dt
            || konst.datum_type() != f32_dt
            || data.rank() < 2
            || konst.rank() != data.rank()
        {
            return Ok(None);
        }
        let rank = konst.rank();
        let (outputs, feature_dims) = if outputs_first {
            (konst.shape()[0], &konst.shape()[1..])
        } else {
            (konst.shape()[rank - 1], &konst.shape()[..rank - 1])
        };
        let features: usize = feature_dims.iter().product();
        let same_features = data.shape[1..]
            .iter()
            .zip(feature_dims)
            .all(|(d, &k)| d.to_usize().ok() == Some(k));
        // One output is a matrix-vector product that tract plans differently for a concrete
        // batch (its sums then differ from the matrix product's in the last bit): left to tract.
        if !same_features || !(2..=MAX_OUTPUTS).contains(&outputs) || features == 0 {
            return Ok(None);
        }
        let padded = outputs.next_multiple_of(8);
        let values = konst.try_as_plain_ram()?;
        let values = values.as_slice::<f32>()?;
        let mut weights = vec![0.0f32; features * padded];
        for (f, row) in weights.chunks_exact_mut(padded).enumerate() {
            for (m, w) in row[..outputs].iter_mut().enumerate() {
                *w = if outputs_first {
                    values[m * features + f]
                } else {
                    values[f * outputs + m]
                };
            }
        }
        let mut op = Dense {
            features,
            outputs,
            weights: Arc::new(weights),
            bias: None,
        };
        let mut last = id;
        if let Some((bias, add)) = folded_bias(model, id, outputs)? {
            op.bias = Some(bias);
            last = add;
        }
        Ok(Some((op, last)))
    }

    fn run(&self, input: &Tensor) -> TractResult<Tensor> {
        let rows = input.shape().first().copied().unwrap_or(0);
        ensure!(
            input.len() == rows * self.features,
            "Dense: input {:?} is not rows of {} features",
            input.shape(),
            self.features
        );
        let mut output = Tensor::zero::<f32>(&[rows, self.outputs])?;
        let ram = input.try_as_plain_ram()?;
        let x = ram.as_slice::<f32>()?;
        let mut out_ram = output.try_as_plain_ram_mut()?;
        let out = out_ram.as_slice_mut::<f32>()?;
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA are present (checked just above).
            done = unsafe { self.rows_avx2(x, out) };
        }
        for (row, out) in x
            .chunks_exact(self.features)
            .zip(out.chunks_exact_mut(self.outputs))
            .skip(done)
        {
            self.row(row, out);
        }
        Ok(output)
    }

    /// One row, scalar: tract's fold per output (machines without AVX2 and FMA).
    fn row(&self, x: &[f32], out: &mut [f32]) {
        let padded = self.outputs.next_multiple_of(8);
        for (m, o) in out.iter_mut().enumerate() {
            let mut acc = 0.0f32;
            for (&v, w) in x.iter().zip(self.weights.chunks_exact(padded)) {
                acc = v.mul_add(w[m], acc);
            }
            *o = self.bias.as_ref().map_or(acc, |b| b[m] + acc);
        }
    }

    /// Every row, in blocks of `ROWS` then one at a time; returns how many rows it did.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn rows_avx2(&self, x: &[f32], out: &mut [f32]) -> usize {
        // Blocks of ROWS rows, then the rest one row at a time (still in vectors: a lone row,
        // as a single-input request sends, must not fall to the scalar fold's `fmaf` calls).
        let (k, m) = (self.features, self.outputs);
        let blocked = x.len() / (k * ROWS) * ROWS;
        let (x_blocks, x_rest) = x.split_at(blocked * k);
        let (out_blocks, out_rest) = out.split_at_mut(blocked * m);
        let rest = if m <= 8 {
            self.blocks_avx2::<1, ROWS>(x_blocks, out_blocks);
            self.blocks_avx2::<1, 1>(x_rest, out_rest)
        } else {
            self.blocks_avx2::<2, ROWS>(x_blocks, out_blocks);
            self.blocks_avx2::<2, 1>(x_rest, out_rest)
        };
        blocked + rest
    }

    /// The rows of `x` in blocks of `R`, the outputs in `V` vectors of eight; returns how many
    /// rows it did.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn blocks_avx2<const V: usize, const R: usize>(&self, x: &[f32], out: &mut [f32]) -> usize {
        use std::arch::x86_64::*;
        let (k, m) = (self.features, self.outputs);
        // Each weight load reads eight floats at f * 8V + 8v with f < features, v < V: inside
        // `weights`, whose rows are 8V long.
        assert!(V * 8 == m.next_multiple_of(8) && self.weights.len() == k * V * 8);
        let weights = self.weights.as_ptr();
        let bias = self.bias.as_ref().map(|b| {
            let mut padded = [0.0f32; MAX_OUTPUTS];
            padded[..m].copy_from_slice(b);
            padded
        });
        let blocks = (x.len() / (k * R)).min(out.len() / (m * R));
        for (xs, outs) in x.chunks_exact(k * R).zip(out.chunks_exact_mut(m * R)) {
            let mut acc = [[_mm256_setzero_ps(); V]; R];
            for f in 0..k {
                let mut w = [_mm256_setzero_ps(); V];
                for (v, w) in w.iter_mut().enumerate() {
                    let at = weights.wrapping_add((f * V + v) * 8);
                    // SAFETY: `at..at + 8` lies inside `weights` (asserted above).
                    *w = unsafe { _mm256_loadu_ps(at) };
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let xv = _mm256_set1_ps(xs[r * k + f]);
                    for (a, &w) in acc.iter_mut().zip(&w) {
                        *a = _mm256_fmadd_ps(xv, w, *a);
                    }
                }
            }
            for (acc, out) in acc.iter().zip(outs.chunks_exact_mut(m)) {
                let mut lanes = [0.0f32; MAX_OUTPUTS];
                for (v, &a) in acc.iter().enumerate() {
                    let a = match &bias {
                        Some(b) => {
                            let at = b.as_ptr().wrapping_add(v * 8);
                            // SAFETY: v * 8 + 8 <= 8V <= MAX_OUTPUTS: inside the padded bias.
                            _mm256_add_ps(unsafe { _mm256_loadu_ps(at) }, a)
                        }
                        None => a,
                    };
                    let at = lanes.as_mut_ptr().wrapping_add(v * 8);
                    // SAFETY: v * 8 + 8 <= MAX_OUTPUTS: inside `lanes`.
                    unsafe { _mm256_storeu_ps(at, a) };
                }
                out.copy_from_slice(&lanes[..m]);
            }
        }
        blocks * R
    }
}

/// Whether an einsum expression is a dense layer, `[batch, features...] x [features...,
/// outputs] -> [batch, outputs]` (false) or with the weights outputs first, `[outputs,
/// features...]` (true, an ONNX Gemm with `transB`): the first input's axes after the first are
/// the weights' feature axes in the same order, and every axis letter is distinct.
fn dense_layout(expr: &str) -> Option<bool> {
    let (inputs, output) = expr.split_once("->")?;
    let (a, b) = inputs.split_once(',')?;
    let (a, b, output): (Vec<char>, Vec<char>, Vec<char>) = (
        a.chars().collect(),
        b.chars().collect(),
        output.chars().collect(),
    );
    let (&batch, features) = a.split_first()?;
    let mut letters = a.clone();
    letters.extend(&b);
    letters.sort_unstable();
    letters.dedup();
    if features.is_empty() || b.len() != a.len() || letters.len() != a.len() + 1 {
        return None;
    }
    [false, true].into_iter().find(|&outputs_first| {
        let (out, weight_features) = if outputs_first {
            (b[0], &b[1..])
        } else {
            (b[b.len() - 1], &b[..b.len() - 1])
        };
        weight_features == features && output == [batch, out]
    })
}

/// The bias addition after node `id` that the op can fold: its only successor, an `Add` with a
/// constant of one value per output (`[outputs]` or `[1, outputs]`). The values and node id.
fn folded_bias(
    model: &TypedModel,
    id: usize,
    outputs: usize,
) -> TractResult<Option<(Vec<f32>, usize)>> {
    let Some(next) = model.single_succ(id)? else {
        return Ok(None);
    };
    if model.outputs.contains(&OutletId::new(id, 0)) || next.inputs.len() != 2 {
        return Ok(None);
    }
    let Some(bin) = next.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if !bin.0.is::<Add>() {
        return Ok(None);
    }
    let other = next.inputs[usize::from(next.inputs[0].node == id)];
    let Some(konst) = model.outlet_fact(other)?.konst.clone() else {
        return Ok(None);
    };
    let product = model.outlet_fact(OutletId::new(id, 0))?;
    let same_shape = model.outlet_fact(OutletId::new(next.id, 0))?.shape == product.shape;
    let per_output = konst.shape() == [outputs] || konst.shape() == [1, outputs];
    if !same_shape || !per_output || konst.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let bias = konst.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    Ok(Some((bias, next.id)))
}

impl Op for Dense {
    fn name(&self) -> StaticName {
        "modelvet.Dense".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} features -> {} outputs, bias: {}",
            self.features,
            self.outputs,
            self.bias.is_some()
        )])
    }

    op_as_typed_op!();
}

super::plan::single_input_eval!(Dense, run);

impl TypedOp for Dense {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch = inputs[0].shape[0].clone();
        Ok(tvec!(f32::fact(&[batch, self.outputs.to_dim()])))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::plan::tests::{awkward_values, run_plan};

    /// `[batch, features...] x [features..., outputs]` as a decluttered ONNX Gemm or MatMul
    /// becomes: an einsum with constant weights, then optionally the bias added.
    fn product(
        features: &[usize],
        outputs: usize,
        bias: bool,
        batch: Option<usize>,
        expr: &str,
    ) -> TypedModel {
        let mut model = TypedModel::default();
        let mut shape: TVec<TDim> = tvec![match batch {
            Some(n) => n.to_dim(),
            None => model.symbols.sym("N").to_dim(),
        }];
        shape.extend(features.iter().map(|&f| f.to_dim()));
        let x = model.add_source("x", f32::fact(&shape)).expect("source");
        let volume: usize = features.iter().product();
        let weights: Vec<f32> = awkward_values(volume * outputs, outputs as u64)
            .into_iter()
            .map(|v| if v.is_finite() { v / 10.0 } else { 0.5 })
            .collect();
        let mut w_shape = features.to_vec();
        if dense_layout(expr) == Some(true) {
            w_shape.insert(0, outputs);
        } else {
            w_shape.push(outputs);
        }
        let w = Tensor::from_shape(&w_shape, &weights).expect("weights");
        let w = model.add_const("w", w).expect("const");
        let einsum = EinSum::new(expr.parse().expect("axes"), f32::datum_type());
        let mut wire = model.wire_node("product", einsum, &[x, w]).expect("einsum");
        if bias {
            let b: Vec<f32> = (0..outputs).map(|m| m as f32 / 8.0 - 0.5).collect();
            let b = Tensor::from_shape(&[1, outputs], &b).expect("bias");
            let b = model.add_const("b", b).expect("const");
            let add = TypedBinOp(Box::new(Add), None);
            wire = model.wire_node("bias", add, &[wire[0], b]).expect("add");
        }
        model.select_output_outlets(&wire).expect("outputs");
        model
    }

    #[test]
    fn every_bit_matches_tracts_product() {
        let layers: [(&[usize], &str); 6] = [
            (&[1], "mk,kn->mn"),
            (&[3], "mk,kn->mn"),
            (&[64], "mk,kn->mn"),
            (&[8, 13, 13], "mbak,bakn->mn"),
            (&[64], "mk,nk->mn"),
            (&[8, 13, 13], "mbak,nbak->mn"),
        ];
        let mut cases = 0;
        for (features, expr) in layers {
            for outputs in [2, 7, 8, 9, 10, 16] {
                for bias in [false, true] {
                    let volume: usize = features.iter().product();
                    // Rows: a lone one, blocks of four with every remainder, a probe-sized batch.
                    for (rows, symbolic) in [
                        (1, true),
                        (5, true),
                        (6, true),
                        (7, true),
                        (37, true),
                        (8, false),
                    ] {
                        let awkward = symbolic && rows != 37;
                        let mut values = awkward_values(rows * volume, (rows * outputs) as u64);
                        if !awkward {
                            // tract runs the bias as its own op for a concrete shape: the same
                            // sum, but a NaN's payload may differ.
                            values
                                .iter_mut()
                                .for_each(|v| *v = if v.is_finite() { *v } else { 1.0 });
                        }
                        let mut shape = vec![rows];
                        shape.extend_from_slice(features);
                        let input = Tensor::from_shape(&shape, &values).expect("input");
                        let theirs =
                            product(features, outputs, bias, (!symbolic).then_some(rows), expr);
                        let mut ours = theirs.clone();
                        assert_eq!(speed_up_dense(&mut ours).expect("swap"), 1);
                        // The einsum and its bias are folded: the source and Dense are left.
                        assert_eq!(ours.nodes().len(), 2, "{:?}", ours.nodes());
                        let what = format!("{features:?} -> {outputs}, bias {bias}, {rows} rows");
                        let (ours, theirs) = (run_plan(ours, &input), run_plan(theirs, &input));
                        if let Some(i) = (0..ours.len()).find(|&i| ours[i] != theirs[i]) {
                            panic!(
                                "{what}: output {i} is {} ({:#x}), tract's {} ({:#x})",
                                f32::from_bits(ours[i]),
                                ours[i],
                                f32::from_bits(theirs[i]),
                                theirs[i]
                            );
                        }
                        assert_eq!(ours.len(), theirs.len(), "{what}");
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 6 * 6 * 2 * 6);
    }

    #[test]
    fn only_products_it_computes_identically_are_replaced() {
        let swapped = |mut model: TypedModel| speed_up_dense(&mut model).expect("swap");
        assert_eq!(swapped(product(&[20], 16, true, None, "mk,kn->mn")), 1);
        assert_eq!(
            swapped(product(&[20], 17, true, None, "mk,kn->mn")),
            0,
            "wider heads are tract's"
        );
        assert_eq!(swapped(product(&[20], 1, true, None, "mk,kn->mn")), 0);
        // Weights computed at run time are not the op's to hold.
        let mut model = product(&[20], 10, false, None, "mk,kn->mn");
        let w = model.add_source("w", f32::fact([20, 10])).expect("source");
        let einsum = model
            .nodes()
            .iter()
            .position(|n| n.op_is::<EinSum>())
            .expect("einsum");
        model.add_edge(w, InletId::new(einsum, 1)).expect("rewire");
        assert_eq!(swapped(model), 0);
        for expr in ["mk,kn->mn", "mbak,bakn->mn", "xa,an->xn"] {
            assert_eq!(dense_layout(expr), Some(false), "{expr}");
        }
        for expr in ["mk,nk->mn", "mbak,nbak->mn"] {
            assert_eq!(dense_layout(expr), Some(true), "{expr}");
        }
        for expr in [
            "km,kn->mn",
            "mk,nm->mn",
            "mk,kn->nm",
            "mk,kn->mkn",
            "mab,ban->mn",
            "mab,nba->mn",
            "mk,km->mm",
            "mkk,kkn->mn",
            "m,n->mn",
            "mk,kn",
        ] {
            assert_eq!(dense_layout(expr), None, "{expr}");
        }
    }
}
