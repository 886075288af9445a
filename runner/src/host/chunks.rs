//! Large batches run through tract in row chunks small enough for the plan's intermediate tensors
//! to stay in cache. A convolution's output is many times its input (the MNIST CNN fixture: 57 KB
//! of intermediates per row for a 3 KB row), and at the probe's 256-row batches tract ran that
//! model ~20% slower per row than at 32-128 rows (`bench_infer`, batch 256 against 128). The
//! probe keeps sending 256-row requests (fewer round trips); the host splits them.
//!
//! Rows do not interact in a batch-major plan: for the convolutional fixtures, the ones that get
//! split, each row's output is the same bits in a chunk as in the whole batch (tested); tract's
//! dense products may round a few ulps differently at another batch size, as they already do for
//! the probe's last, shorter batch. Chunks are even (no sliver of a few rows), the split is only
//! made when the first input's batch axis is symbolic, and a model whose first output turns out
//! not to be batch-major runs whole.

use tract_onnx::prelude::*;

/// Intermediate tensor bytes one chunk may need: a few MiB, which measured runs place between
/// the fastest chunk sizes of the CNN fixture.
pub const WORKING_SET_BYTES: usize = 4 << 20;
/// Chunks never go below this many rows: below it tract's matrix kernels run short of rows.
pub const MIN_ROWS: usize = 32;

/// Rows per tract run for `model` (typed, before optimisation), from the bytes per row of every
/// tensor whose shape has a symbolic (batch) axis; `None` when the first input's batch axis is
/// fixed or nothing scales with it, i.e. when a batch is never split.
pub fn rows_per_run(model: &TypedModel) -> Option<usize> {
    let first = model.input_fact(0).ok()?;
    if first.shape.rank() == 0 || first.shape[0].as_i64().is_some() {
        return None;
    }
    // The first output must be declared batch-major: its leading axis the input's batch symbol
    // (an output whose leading axis merely happens to equal a chunk's rows would stack wrongly).
    let output = model.output_fact(0).ok()?;
    if output.shape.rank() == 0 || output.shape[0] != first.shape[0] {
        return None;
    }
    let mut per_row = 0usize;
    for node in model.nodes() {
        for outlet in &node.outputs {
            let shape = &outlet.fact.shape;
            if shape.iter().all(|d| d.as_i64().is_some()) {
                continue; // weights and other constants do not grow with the batch
            }
            let elements = shape
                .iter()
                .filter_map(|d| d.as_i64())
                .fold(1usize, |acc, d| acc.saturating_mul(d.max(0) as usize));
            per_row =
                per_row.saturating_add(elements.saturating_mul(outlet.fact.datum_type.size_of()));
        }
    }
    (per_row > 0).then(|| (WORKING_SET_BYTES / per_row).max(MIN_ROWS))
}

/// Runs `input` through `state` in chunks of at most `rows` rows and returns the first output,
/// stacked back in row order. Falls back to one whole run (after one chunk) when the output is not
/// batch-major; `Err` carries tract's error.
pub fn run_in_chunks(
    state: &mut TypedSimpleState,
    input: Tensor,
    rows: usize,
) -> TractResult<TValue> {
    let total = input.shape().first().copied().unwrap_or(0);
    if rows == 0 || total <= rows {
        return first_output(state.run(tvec![input.into_tvalue()])?);
    }
    // Even chunks (256 rows at 73 a chunk: 4 x 64), so no chunk is a sliver: tract picks other
    // kernels for a handful of rows (a single row runs as a matrix-vector product).
    let chunks = total.div_ceil(rows);
    let size = total.div_ceil(chunks);
    let mut outputs: Vec<TValue> = Vec::with_capacity(chunks);
    for start in (0..total).step_by(size) {
        let end = (start + size).min(total);
        let out = first_output(state.run(tvec![input.slice(0, start, end)?.into_tvalue()])?)?;
        if out.shape().first() != Some(&(end - start)) {
            // Not batch-major: the rows are not separable, so the batch runs whole.
            return first_output(state.run(tvec![input.into_tvalue()])?);
        }
        outputs.push(out);
    }
    let parts: Vec<&Tensor> = outputs.iter().map(|t| &**t).collect();
    Ok(Tensor::stack_tensors(0, &parts)?.into_tvalue())
}

fn first_output(outputs: TVec<TValue>) -> TractResult<TValue> {
    outputs
        .into_iter()
        .next()
        .ok_or_else(|| TractError::msg("the model produced no output"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::plan::tests::bits;

    fn plan(name: &str) -> (TypedModel, Arc<TypedSimplePlan>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models");
        let typed = tract_onnx::onnx()
            .model_for_path(dir.join(format!("{name}.onnx")))
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .expect("fixture");
        let plan = typed
            .clone()
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .expect("plan");
        (typed, plan)
    }

    #[test]
    fn chunks_follow_the_rows_working_set() {
        let (cnn, _) = plan("mnist_cnn_clean_a");
        let (mlp, _) = plan("mnist_mlp_clean_a");
        let cnn_rows = rows_per_run(&cnn).expect("symbolic batch");
        let mlp_rows = rows_per_run(&mlp).expect("symbolic batch");
        // The CNN's intermediates (conv 8x26x26, pool 8x13x13, ...) are ~57 KB a row.
        assert!((32..=128).contains(&cnn_rows), "cnn {cnn_rows}");
        assert!(
            mlp_rows > 256,
            "an MLP is never split at the probe's batch: {mlp_rows}"
        );
    }

    fn run_both(name: &str, chunks: &[usize]) -> Vec<(usize, Tensor, Tensor)> {
        let (typed, plan) = plan(name);
        let sample: Vec<usize> = typed.input_fact(0).expect("input").shape[1..]
            .iter()
            .map(|d| d.as_i64().expect("fixed sample shape") as usize)
            .collect();
        let rows = 203;
        let shape: Vec<usize> = std::iter::once(rows)
            .chain(sample.iter().copied())
            .collect();
        let len: usize = shape.iter().product();
        let values: Vec<f32> = (0..len)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let input = Tensor::from_shape(&shape, &values).expect("input");
        let mut state = plan.spawn().expect("state");
        let whole = run_in_chunks(&mut state, input.clone(), rows).expect("whole");
        chunks
            .iter()
            .map(|&chunk| {
                let parts = run_in_chunks(&mut state, input.clone(), chunk).expect("chunks");
                assert_eq!(parts.shape(), whole.shape(), "{name} chunk {chunk}");
                (chunk, parts.into_tensor(), whole.clone().into_tensor())
            })
            .collect()
    }

    #[test]
    fn a_cnn_answers_every_row_bit_for_bit_in_chunks() {
        // The models that get split are the ones with large intermediates: convolutions.
        for name in ["mnist_cnn_clean_a", "mnist_cnn_blend_noise"] {
            for (chunk, parts, whole) in run_both(name, &[1, 32, 50, 64, 100, 202]) {
                assert_eq!(bits(&parts), bits(&whole), "{name} chunk {chunk}");
            }
        }
    }

    #[test]
    fn dense_models_round_alike_in_chunks() {
        // tract's dense products may round differently at another batch size (as they already do
        // for the probe's last, shorter batch), so an MLP split in chunks agrees to a few ulps;
        // `rows_per_run` does not split the fixtures' MLPs at the probe's batch size anyway.
        for (chunk, parts, whole) in run_both("mnist_mlp_clean_b", &[32, 64, 202]) {
            let (p, w) = (f32s(&parts), f32s(&whole));
            let worst = p
                .iter()
                .zip(&w)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1e-3))
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "chunk {chunk}: relative difference {worst}");
        }
    }

    fn f32s(t: &Tensor) -> Vec<f32> {
        t.try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .expect("f32 output")
    }

    #[test]
    fn a_model_whose_output_is_not_batch_major_is_never_split() {
        use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};
        // [N, 4] summed over the batch: a [1, 4] answer that chunks would turn into [chunks, 4].
        let mut model = TypedModel::default();
        let n = model.sym("N");
        let x = model
            .add_source("x", f32::fact(&[TDim::from(n), TDim::from(4)]))
            .expect("source");
        let op = Reduce {
            axes: tvec![0],
            reducer: Reducer::Sum,
        };
        let sum = model.wire_node("sum", op, &[x]).expect("wire");
        model.select_output_outlets(&sum).expect("outputs");
        assert_eq!(rows_per_run(&model), None);
        let (mlp, _) = plan("mnist_mlp_clean_a");
        assert!(rows_per_run(&mlp).is_some(), "a batch-major model is sized");
    }
}
