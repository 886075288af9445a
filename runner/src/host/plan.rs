//! The host's plan of an ONNX model: tract's typed, decluttered model with the ops modelvet
//! computes faster swapped in. Each swap computes every bit tract would (see each op's module and
//! the fixture test below); `into_optimized` comes after.

use tract_onnx::prelude::*;

/// `EvalOp` for one of our swapped-in ops: stateless, one input, one output computed by
/// `$op::$method(&input)`.
macro_rules! single_input_eval {
    ($op:ty, $method:ident) => {
        impl EvalOp for $op {
            op_out_of_plan!();

            fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
                let input = args_1!(inputs);
                Ok(tvec!(self.$method(&input)?.into_tvalue()))
            }
        }
    };
}
pub(super) use single_input_eval;

/// The model as the host plans it: typed, decluttered, its small convolutions swapped for
/// `SmallConv` (with the ReLU and pool after them), its strided 2x2 pools for `Pool2x2` and its
/// few-output dense layers for `Dense`.
pub fn typed_for_host(model: InferenceModel) -> TractResult<TypedModel> {
    let mut typed = model.into_typed()?.into_decluttered()?;
    super::conv::speed_up_convs(&mut typed)?;
    super::pool::speed_up_pools(&mut typed)?;
    super::dense::speed_up_dense(&mut typed)?;
    Ok(typed)
}

/// Swaps an op in wherever `for_node(model, id)` offers one: the op takes node `id`'s first input
/// and stands for the output of node `last` (`id` itself, or the last node it folds in). Returns
/// how many were swapped; the nodes left without use are dropped.
pub fn swap_nodes<O: TypedOp>(
    model: &mut TypedModel,
    name: &str,
    for_node: impl Fn(&TypedModel, usize) -> TractResult<Option<(O, usize)>>,
) -> TractResult<usize> {
    let mut swapped = 0;
    for id in 0..model.nodes().len() {
        let Some((op, last)) = for_node(model, id)? else {
            continue;
        };
        let node = model.node(id);
        let mut patch = TypedModelPatch::new(name);
        let input = patch.tap_model(model, node.inputs[0])?;
        let wire = patch.wire_node(&node.name, op, &[input])?[0];
        patch.shunt_outside(model, OutletId::new(last, 0), wire)?;
        patch.apply(model)?;
        swapped += 1;
    }
    if swapped > 0 {
        model.compact()?;
    }
    Ok(swapped)
}

#[cfg(test)]
pub(in crate::host) mod tests {
    use super::*;

    /// Values a swapped op must treat exactly as tract does: NaN, infinities, f32::MIN, signed zeros,
    /// ties; the rest pseudo-random.
    pub(in crate::host) fn awkward_values(len: usize, seed: u64) -> Vec<f32> {
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN,
            0.0,
            -0.0,
            1.0,
            1.0,
        ];
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if state.is_multiple_of(5) {
                    specials[(state >> 8) as usize % specials.len()]
                } else {
                    ((state >> 11) % 2000) as f32 / 100.0 - 10.0
                }
            })
            .collect()
    }

    pub(in crate::host) fn bits(t: &Tensor) -> Vec<u32> {
        t.try_as_plain_ram()
            .expect("plain")
            .as_slice::<f32>()
            .expect("f32")
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// `model`'s first output, planned and run on `input`, as bits.
    pub(in crate::host) fn run_plan(model: TypedModel, input: &Tensor) -> Vec<u32> {
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .expect("plan");
        bits(&plan.run(tvec![input.clone().into_tvalue()]).expect("run")[0])
    }

    #[test]
    fn every_fixture_answers_bit_for_bit_as_tract_plans_it() {
        use crate::host::conv::SmallConv;
        use crate::host::dense::Dense;
        use tract_onnx::tract_core::ops::cnn::Conv;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models");
        let mut models = 0;
        for entry in std::fs::read_dir(&dir).expect("fixtures") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("onnx") {
                continue;
            }
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let load = || tract_onnx::onnx().model_for_path(&path).expect("fixture");
            let ours = typed_for_host(load()).expect("host plan");
            let has = |f: fn(&TypedNode) -> bool| ours.nodes().iter().any(f);
            assert!(
                has(|n| n.op_is::<Dense>()),
                "{name}: its 10-class head is a Dense"
            );
            assert!(!has(|n| n.op_is::<Conv>()), "{name}: no conv left to tract");
            assert_eq!(
                name.contains("cnn"),
                has(|n| n.op_is::<SmallConv>()),
                "{name}"
            );
            let theirs = load()
                .into_typed()
                .and_then(|m| m.into_decluttered())
                .expect("typed");
            let side = if name.starts_with("digits") { 8 } else { 28 };
            let shape = |batch| {
                if name.contains("cnn") {
                    vec![batch, 1, side, side]
                } else {
                    vec![batch, side * side]
                }
            };
            for batch in [1, 6, 37] {
                let values: Vec<f32> = awkward_values(batch * side * side, batch as u64)
                    .into_iter()
                    .map(|v| {
                        if v.is_finite() {
                            v.abs().min(10.0) / 10.0
                        } else {
                            1.0
                        }
                    })
                    .collect();
                let input = Tensor::from_shape(&shape(batch), &values).expect("input");
                assert_eq!(
                    run_plan(ours.clone(), &input),
                    run_plan(theirs.clone(), &input),
                    "{name}, batch {batch}"
                );
            }
            models += 1;
        }
        assert!(models >= 12, "{models} fixtures");
    }
}
