//! ONNX models on tract: a budget check on the raw protobuf before anything is materialised, then
//! one optimised plan (symbolic batch dimensions kept symbolic) run once per request.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::{ModelError, tensor_shape_json};
use crate::host::channel::{ModelErrorKind, ModelFormat, ModelInfo, TensorInfo};

/// Largest total of declared initializer/constant bytes, and largest single declared tensor
/// (fixed input/output/value_info shapes, ConstantOfShape/Expand targets). Defends against
/// models whose declared shapes would make tract allocate terabytes while loading or folding.
pub const ONNX_MEMORY_BUDGET_BYTES: u64 = 4 << 30;
/// Deepest nesting of subgraphs (If/Loop/Scan bodies) inspected; defends the budget walk's stack.
const MAX_GRAPH_DEPTH: usize = 16;
/// Plans kept for models whose shapes tract cannot optimise symbolically (one per input shape).
const MAX_CACHED_PLANS: usize = 4;

pub struct OnnxModel {
    info: ModelInfo,
    input_dt: DatumType,
    /// Per-sample input facts: `Some(n)` fixed, `None` symbolic.
    input_dims: Vec<Option<usize>>,
    input_count: usize,
    /// Rows per tract run when a request is larger (`chunks::rows_per_run`).
    rows_per_run: Option<usize>,
    plan: Plan,
}

enum Plan {
    /// One optimised plan for every batch size.
    Symbolic {
        plan: Arc<TypedSimplePlan>,
        state: TypedSimpleState,
    },
    /// tract could not optimise with symbols: concretise per input shape (small LRU).
    PerShape {
        model: InferenceModel,
        cached: Vec<(Vec<usize>, TypedSimpleState)>,
    },
}

/// Loads an ONNX model from its bytes. Errors are messages for a `LoadError` reply.
pub fn load(bytes: &[u8]) -> Result<OnnxModel, String> {
    let proto =
        pb::ModelProto::decode(bytes).map_err(|e| format!("not a valid ONNX protobuf: {e}"))?;
    check_budget(&proto, ONNX_MEMORY_BUDGET_BYTES)?;
    let graph = proto.graph.as_ref().ok_or("the ONNX model has no graph")?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let input_names: Vec<String> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .map(|i| i.name.clone())
        .collect();
    let output_names: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();

    let model = guarded(|| tract_onnx::onnx().model_for_proto_model(&proto))
        .map_err(|e| format!("tract cannot read the model: {e}"))?;
    drop(proto);
    let typed = guarded(|| super::plan::typed_for_host(model.clone()))
        .map_err(|e| format!("tract cannot type the model: {e}"))?;

    let input_count = typed.input_outlets().map_err(|e| e.to_string())?.len();
    if input_count == 0 {
        return Err("the model declares no inputs".into());
    }
    let mut inputs = Vec::with_capacity(input_count);
    for (ix, outlet) in typed
        .input_outlets()
        .map_err(|e| e.to_string())?
        .iter()
        .enumerate()
    {
        let fact = typed.outlet_fact(*outlet).map_err(|e| e.to_string())?;
        let name = input_names
            .get(ix)
            .cloned()
            .unwrap_or_else(|| typed.node(outlet.node).name.clone());
        inputs.push(tensor_info(name, fact));
    }
    let mut outputs = Vec::new();
    for (ix, outlet) in typed
        .output_outlets()
        .map_err(|e| e.to_string())?
        .iter()
        .enumerate()
    {
        let fact = typed.outlet_fact(*outlet).map_err(|e| e.to_string())?;
        let name = output_names
            .get(ix)
            .cloned()
            .unwrap_or_else(|| typed.node(outlet.node).name.clone());
        outputs.push(tensor_info(name, fact));
    }
    let first = typed.input_fact(0).map_err(|e| e.to_string())?;
    let input_dt = first.datum_type;
    let input_dims: Vec<Option<usize>> = first
        .shape
        .iter()
        .map(|d| d.as_i64().map(|v| v as usize))
        .collect();

    let rows_per_run = super::chunks::rows_per_run(&typed);
    let plan = match guarded(|| typed.into_optimized().and_then(|m| m.into_runnable())) {
        Ok(plan) => {
            let state = plan
                .spawn()
                .map_err(|e| format!("tract cannot plan the model: {e}"))?;
            Plan::Symbolic { plan, state }
        }
        Err(_) => Plan::PerShape {
            model,
            cached: Vec::new(),
        },
    };
    let info = ModelInfo {
        format: ModelFormat::Onnx,
        inputs,
        outputs,
    };
    Ok(OnnxModel {
        info,
        input_dt,
        input_dims,
        input_count,
        rows_per_run,
        plan,
    })
}

impl OnnxModel {
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Runs one batch; the first output is returned as f32 (used by the unit tests).
    #[cfg(test)]
    pub fn infer(
        &mut self,
        input: &[f32],
        shape: &[usize],
        out: &mut Vec<f32>,
        out_shape: &mut Vec<usize>,
    ) -> Result<(), ModelError> {
        let tensor = Tensor::from_shape(shape, input)
            .map_err(|e| ModelError::new(ModelErrorKind::Shape, e.to_string()))?;
        let output = self.run(tensor)?;
        out.clear();
        out.extend_from_slice(f32_slice(&output)?);
        out_shape.clear();
        out_shape.extend_from_slice(output.shape());
        Ok(())
    }

    /// Runs one batch held in an f32 tensor (the host reads the request straight into it);
    /// returns the first output as an f32 tensor.
    pub fn run(&mut self, tensor: Tensor) -> Result<TValue, ModelError> {
        if self.input_count != 1 {
            return Err(ModelError::new(
                ModelErrorKind::Shape,
                format!(
                    "the model has {} inputs; the host feeds exactly one",
                    self.input_count
                ),
            ));
        }
        let shape = tensor.shape().to_vec();
        self.check_shape(&shape)?;
        let tensor = if self.input_dt == f32::datum_type() {
            tensor
        } else {
            tensor
                .cast_to_dt(self.input_dt)
                .map(|t| t.into_owned())
                .map_err(|e| {
                    ModelError::new(
                        ModelErrorKind::Shape,
                        format!("cannot feed f32 to a {:?} input: {e}", self.input_dt),
                    )
                })?
        };
        // Large batches of a symbolic-batch plan run in cache-sized row chunks (see `chunks`).
        let rows = match self.plan {
            Plan::Symbolic { .. } => self.rows_per_run.unwrap_or(0),
            Plan::PerShape { .. } => 0,
        };
        let state = self.state_for(&shape)?;
        let first = match catch_unwind(AssertUnwindSafe(|| {
            super::chunks::run_in_chunks(state, tensor, rows)
        })) {
            Ok(Ok(first)) => first,
            Ok(Err(e)) => return Err(ModelError::new(ModelErrorKind::Runtime, format!("{e:#}"))),
            Err(panic) => {
                self.reset_state();
                return Err(ModelError::new(
                    ModelErrorKind::Runtime,
                    format!("tract panicked: {}", panic_message(&panic)),
                ));
            }
        };
        if first.datum_type() == f32::datum_type() {
            return Ok(first);
        }
        let as_f32 = first.cast_to::<f32>().map_err(|e| {
            ModelError::new(
                ModelErrorKind::Runtime,
                format!("output is not numeric: {e}"),
            )
        })?;
        Ok(as_f32.into_owned().into_tvalue())
    }

    fn check_shape(&self, shape: &[usize]) -> Result<(), ModelError> {
        let fits = shape.len() == self.input_dims.len()
            && shape
                .iter()
                .zip(&self.input_dims)
                .all(|(got, want)| want.is_none_or(|w| w == *got));
        if fits {
            return Ok(());
        }
        let declared: Vec<String> = self
            .input_dims
            .iter()
            .map(|d| d.map_or_else(|| "?".to_string(), |v| v.to_string()))
            .collect();
        Err(ModelError::new(
            ModelErrorKind::Shape,
            format!(
                "input shape {shape:?} does not fit the model's declared [{}]",
                declared.join(", ")
            ),
        ))
    }

    fn state_for(&mut self, shape: &[usize]) -> Result<&mut TypedSimpleState, ModelError> {
        match &mut self.plan {
            Plan::Symbolic { state, .. } => Ok(state),
            Plan::PerShape { model, cached } => {
                if let Some(pos) = cached.iter().position(|(s, _)| s == shape) {
                    let entry = cached.remove(pos);
                    cached.push(entry);
                } else {
                    let fact = InferenceFact::dt_shape(self.input_dt, shape);
                    let plan = guarded(|| {
                        super::plan::typed_for_host(model.clone().with_input_fact(0, fact)?)?
                            .into_optimized()?
                            .into_runnable()
                    })
                    .map_err(|e| {
                        ModelError::new(
                            ModelErrorKind::Shape,
                            format!("cannot plan for shape {shape:?}: {e}"),
                        )
                    })?;
                    let state = plan
                        .spawn()
                        .map_err(|e| ModelError::new(ModelErrorKind::Runtime, e.to_string()))?;
                    if cached.len() >= MAX_CACHED_PLANS {
                        cached.remove(0);
                    }
                    cached.push((shape.to_vec(), state));
                }
                cached
                    .last_mut()
                    .map(|(_, state)| state)
                    .ok_or_else(|| ModelError::new(ModelErrorKind::Runtime, "plan cache is empty"))
            }
        }
    }

    /// A panic may leave the state half-written: start the next run from a fresh one.
    fn reset_state(&mut self) {
        match &mut self.plan {
            Plan::Symbolic { plan, state } => {
                if let Ok(fresh) = plan.spawn() {
                    *state = fresh;
                }
            }
            Plan::PerShape { cached, .. } => cached.clear(),
        }
    }
}

/// The f32 values of an output produced by `run`.
pub fn f32_slice(t: &Tensor) -> Result<&[f32], ModelError> {
    t.try_as_plain_ram()
        .and_then(|v| v.as_slice::<f32>())
        .map_err(|e| ModelError::new(ModelErrorKind::Runtime, e.to_string()))
}

fn tensor_info(name: String, fact: &TypedFact) -> TensorInfo {
    let dims: Vec<Option<i64>> = fact.shape.iter().map(|d| d.as_i64()).collect();
    let symbols: Vec<String> = fact.shape.iter().map(|d| d.to_string()).collect();
    TensorInfo {
        name,
        shape: tensor_shape_json(&dims, &symbols),
        dtype: dtype_name(fact.datum_type),
    }
}

fn dtype_name(dt: DatumType) -> String {
    format!("{dt:?}").to_lowercase()
}

/// Runs tract code that may panic on hostile graphs, turning a panic into an error.
fn guarded<T>(f: impl FnOnce() -> TractResult<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(panic) => Err(format!("tract panicked: {}", panic_message(&panic))),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Refuses models whose declared sizes exceed `budget` bytes, reading only the protobuf.
pub fn check_budget(proto: &pb::ModelProto, budget: u64) -> Result<(), String> {
    let graph = proto.graph.as_ref().ok_or("the ONNX model has no graph")?;
    let mut total = 0u64;
    check_graph(graph, budget, &mut total, 0)
}

fn check_graph(
    graph: &pb::GraphProto,
    budget: u64,
    total: &mut u64,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_GRAPH_DEPTH {
        return Err(format!(
            "subgraphs nest deeper than {MAX_GRAPH_DEPTH} levels"
        ));
    }
    for init in &graph.initializer {
        add_tensor(init, &format!("initializer '{}'", init.name), budget, total)?;
    }
    for value in graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
    {
        check_value_info(value, budget)?;
    }
    for node in &graph.node {
        for attr in &node.attribute {
            if let Some(t) = &attr.t {
                add_tensor(
                    t,
                    &format!("constant in node '{}'", node.name),
                    budget,
                    total,
                )?;
            }
            for t in &attr.tensors {
                add_tensor(
                    t,
                    &format!("constant in node '{}'", node.name),
                    budget,
                    total,
                )?;
            }
            if let Some(sparse) = &attr.sparse_tensor {
                let bytes = declared_bytes(
                    sparse.dims.iter().copied(),
                    4,
                    &format!("sparse constant in node '{}'", node.name),
                )?;
                over_budget(
                    bytes,
                    budget,
                    &format!("sparse constant in node '{}'", node.name),
                )?;
            }
            if let Some(g) = &attr.g {
                check_graph(g, budget, total, depth + 1)?;
            }
            for g in &attr.graphs {
                check_graph(g, budget, total, depth + 1)?;
            }
        }
        // Ops that allocate a tensor whose shape is given by a constant: the shape is data, not a
        // declared dim, so check it too.
        let shape_input = match node.op_type.as_str() {
            "ConstantOfShape" => node.input.first(),
            "Expand" => node.input.get(1),
            _ => None,
        };
        if let Some(values) = shape_input.and_then(|name| constant_ints(graph, name)) {
            let what = format!("{} node '{}'", node.op_type, node.name);
            let bytes = declared_bytes(values.into_iter(), 4, &what)?;
            over_budget(bytes, budget, &what)?;
        }
        // Range(start, limit, delta) with constant operands: its length is data too.
        if node.op_type == "Range" && node.input.len() == 3 {
            let operands: Option<Vec<f64>> = node
                .input
                .iter()
                .map(|name| constant_scalar(graph, name))
                .collect();
            if let Some([start, limit, delta]) = operands.as_deref() {
                let count = ((limit - start) / delta).ceil();
                let count = if count.is_finite() {
                    count.max(0.0)
                } else {
                    f64::MAX
                };
                let what = format!("Range node '{}'", node.name);
                over_budget((count * 8.0).min(u64::MAX as f64) as u64, budget, &what)?;
            }
        }
    }
    Ok(())
}

fn add_tensor(t: &pb::TensorProto, what: &str, budget: u64, total: &mut u64) -> Result<(), String> {
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
        || !t.external_data.is_empty()
    {
        return Err(format!(
            "{what} uses external data, which the sandboxed host does not load"
        ));
    }
    let bytes = declared_bytes(t.dims.iter().copied(), elem_bytes(t.data_type), what)?;
    *total = total.saturating_add(bytes);
    over_budget(bytes, budget, what)?;
    over_budget(*total, budget, "the initializers and constants together")
}

fn check_value_info(value: &pb::ValueInfoProto, budget: u64) -> Result<(), String> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    let Some(pb::type_proto::Value::TensorType(tensor)) =
        value.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Ok(());
    };
    let Some(shape) = &tensor.shape else {
        return Ok(());
    };
    // Symbolic dims count as 1: the request's batch is bounded by the channel's frame limit.
    let dims = shape.dim.iter().map(|d| match &d.value {
        Some(Dim::DimValue(v)) => *v,
        _ => 1,
    });
    let what = format!("declared shape of '{}'", value.name);
    let bytes = declared_bytes(dims, elem_bytes(tensor.elem_type), &what)?;
    over_budget(bytes, budget, &what)
}

/// The int64 values of an initializer or Constant output named `name`, if it is one.
/// The initializer or Constant node value named `name`, if it is one.
fn constant_tensor<'g>(graph: &'g pb::GraphProto, name: &str) -> Option<&'g pb::TensorProto> {
    graph
        .initializer
        .iter()
        .find(|t| t.name == name)
        .or_else(|| {
            graph
                .node
                .iter()
                .filter(|n| n.op_type == "Constant" && n.output.iter().any(|o| o == name))
                .find_map(|n| n.attribute.iter().find_map(|a| a.t.as_ref()))
        })
}

/// A constant scalar (int32/int64/float/double) named `name`, as f64.
fn constant_scalar(graph: &pb::GraphProto, name: &str) -> Option<f64> {
    use pb::tensor_proto::DataType as T;
    let t = constant_tensor(graph, name)?;
    let raw = |n: usize| t.raw_data.get(..n);
    match T::try_from(t.data_type).ok()? {
        T::Int64 => t.int64_data.first().map(|v| *v as f64).or_else(|| {
            raw(8).map(|b| {
                i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f64
            })
        }),
        T::Int32 => t
            .int32_data
            .first()
            .map(|v| *v as f64)
            .or_else(|| raw(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)),
        T::Float => t
            .float_data
            .first()
            .map(|v| *v as f64)
            .or_else(|| raw(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)),
        T::Double => t.double_data.first().copied().or_else(|| {
            raw(8).map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        }),
        _ => None,
    }
}

/// The int64 values of an initializer or Constant output named `name`, if it is one.
fn constant_ints(graph: &pb::GraphProto, name: &str) -> Option<Vec<i64>> {
    let tensor = constant_tensor(graph, name)?;
    if !tensor.int64_data.is_empty() {
        return Some(tensor.int64_data.clone());
    }
    if tensor.data_type == pb::tensor_proto::DataType::Int64 as i32 {
        return Some(
            tensor
                .raw_data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        );
    }
    None
}

fn declared_bytes(dims: impl Iterator<Item = i64>, elem: u64, what: &str) -> Result<u64, String> {
    let mut bytes = elem as u128;
    for d in dims {
        if d < 0 {
            return Err(format!("{what} has a negative dimension ({d})"));
        }
        bytes = bytes.saturating_mul(d as u128);
    }
    Ok(u64::try_from(bytes).unwrap_or(u64::MAX))
}

fn over_budget(bytes: u64, budget: u64, what: &str) -> Result<(), String> {
    if bytes > budget {
        return Err(format!(
            "{what} needs {} but the host's budget is {}: refused before allocating",
            human_bytes(bytes),
            human_bytes(budget)
        ));
    }
    Ok(())
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn elem_bytes(data_type: i32) -> u64 {
    use pb::tensor_proto::DataType as T;
    match T::try_from(data_type) {
        Ok(T::Uint8 | T::Int8 | T::Bool | T::Float8e4m3fn | T::Float8e4m3fnuz | T::Float8e5m2) => 1,
        Ok(T::Uint16 | T::Int16 | T::Float16 | T::Bfloat16) => 2,
        Ok(T::Float | T::Int32 | T::Uint32) => 4,
        Ok(T::Complex128) => 16,
        // Int64, Uint64, Double, Complex64, strings (a pointer each at least) and unknown types.
        _ => 8,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pb::tensor_proto::DataType;

    fn value_info(name: &str, dims: &[Result<i64, &str>]) -> pb::ValueInfoProto {
        use pb::tensor_shape_proto::{Dimension, dimension::Value};
        let dim = dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Ok(v) => Value::DimValue(*v),
                    Err(s) => Value::DimParam(s.to_string()),
                }),
                ..Default::default()
            })
            .collect();
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: DataType::Float as i32,
                    shape: Some(pb::TensorShapeProto { dim }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: DataType::Float as i32,
            float_data: values.to_vec(),
            ..Default::default()
        }
    }

    /// y = x W + b with x: [N, 3], W: [3, 2].
    pub(crate) fn linear_model(
        w: &[f32; 6],
        b: &[f32; 2],
        batch: Result<i64, &str>,
    ) -> pb::ModelProto {
        let node = |op: &str, inputs: &[&str], output: &str| pb::NodeProto {
            op_type: op.into(),
            name: format!("{op}_{output}"),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        };
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(pb::GraphProto {
                name: "linear".into(),
                node: vec![
                    node("MatMul", &["x", "W"], "h"),
                    node("Add", &["h", "b"], "y"),
                ],
                initializer: vec![float_tensor("W", &[3, 2], w), float_tensor("b", &[2], b)],
                input: vec![value_info("x", &[batch, Ok(3)])],
                output: vec![value_info("y", &[batch, Ok(2)])],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const W: [f32; 6] = [1.0, -1.0, 0.5, 2.0, -0.25, 0.0];
    const B: [f32; 2] = [0.1, -0.2];

    fn expected(x: &[f32]) -> Vec<f32> {
        x.chunks(3)
            .flat_map(|r| {
                (0..2).map(move |j| r[0] * W[j] + r[1] * W[2 + j] + r[2] * W[4 + j] + B[j])
            })
            .collect()
    }

    #[test]
    fn symbolic_batch_runs_any_batch_size_and_reports_symbols() {
        let bytes = linear_model(&W, &B, Err("N")).encode_to_vec();
        let mut model = load(&bytes).unwrap();
        let info = model.info().clone();
        assert_eq!(info.inputs[0].name, "x");
        assert_eq!(
            info.inputs[0].shape,
            vec![serde_json::json!("N"), serde_json::json!(3)]
        );
        assert_eq!(info.inputs[0].dtype, "f32");
        assert_eq!(info.outputs[0].name, "y");
        let (mut out, mut shape) = (Vec::new(), Vec::new());
        for n in [1usize, 4, 7] {
            let x: Vec<f32> = (0..n * 3).map(|i| i as f32 * 0.3 - 1.0).collect();
            model.infer(&x, &[n, 3], &mut out, &mut shape).unwrap();
            assert_eq!(shape, vec![n, 2]);
            let want = expected(&x);
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn wrong_shape_is_an_error_reply() {
        let bytes = linear_model(&W, &B, Ok(2)).encode_to_vec();
        let mut model = load(&bytes).unwrap();
        let (mut out, mut shape) = (Vec::new(), Vec::new());
        let err = model
            .infer(&[0.0; 8], &[2, 4], &mut out, &mut shape)
            .unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::Shape);
        assert!(
            err.message.contains("[2, 4]") && err.message.contains("[2, 3]"),
            "{}",
            err.message
        );
        let err = model
            .infer(&[0.0; 9], &[3, 3], &mut out, &mut shape)
            .unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::Shape);
        model
            .infer(&[0.0; 6], &[2, 3], &mut out, &mut shape)
            .unwrap();
    }

    #[test]
    fn truncated_protobuf_is_a_load_error() {
        let bytes = linear_model(&W, &B, Err("N")).encode_to_vec();
        for cut in [1, bytes.len() / 3, bytes.len() - 1] {
            assert!(load(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(load(b"\x7fELF garbage that is not a protobuf").is_err());
    }

    #[test]
    fn terabyte_shapes_are_refused_before_allocating() {
        let mut proto = linear_model(&W, &B, Err("N"));
        let graph = proto.graph.as_mut().unwrap();
        graph.initializer[0].dims = vec![1 << 20, 1 << 20];
        graph.initializer[0].float_data.clear();
        let err = load(&proto.encode_to_vec()).err().unwrap();
        assert!(
            err.contains("initializer 'W'") && err.contains("refused before allocating"),
            "{err}"
        );

        let mut proto = linear_model(&W, &B, Ok(1 << 30));
        proto.graph.as_mut().unwrap().input[0] = value_info("x", &[Ok(1 << 30), Ok(1 << 20)]);
        let err = load(&proto.encode_to_vec()).err().unwrap();
        assert!(err.contains("declared shape of 'x'"), "{err}");

        let proto = linear_model(&W, &B, Ok(-3));
        assert!(
            load(&proto.encode_to_vec())
                .err()
                .unwrap()
                .contains("negative")
        );
    }

    #[test]
    fn constant_of_shape_targets_count_against_the_budget() {
        let mut graph = pb::GraphProto::default();
        graph.initializer.push(pb::TensorProto {
            name: "shape".into(),
            dims: vec![2],
            data_type: DataType::Int64 as i32,
            int64_data: vec![1 << 20, 1 << 20],
            ..Default::default()
        });
        graph.node.push(pb::NodeProto {
            op_type: "ConstantOfShape".into(),
            input: vec!["shape".into()],
            output: vec!["big".into()],
            ..Default::default()
        });
        let proto = pb::ModelProto {
            graph: Some(graph),
            ..Default::default()
        };
        let err = check_budget(&proto, ONNX_MEMORY_BUDGET_BYTES).unwrap_err();
        assert!(err.contains("ConstantOfShape"), "{err}");
    }

    #[test]
    fn constant_ranges_count_against_the_budget() {
        let scalar = |name: &str, v: i64| pb::TensorProto {
            name: name.into(),
            data_type: DataType::Int64 as i32,
            int64_data: vec![v],
            ..Default::default()
        };
        let graph = |limit: i64| pb::GraphProto {
            initializer: vec![
                scalar("start", 0),
                scalar("limit", limit),
                scalar("delta", 1),
            ],
            node: vec![pb::NodeProto {
                op_type: "Range".into(),
                name: "r".into(),
                input: vec!["start".into(), "limit".into(), "delta".into()],
                output: vec!["out".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let proto = |limit| pb::ModelProto {
            graph: Some(graph(limit)),
            ..Default::default()
        };
        let err = check_budget(&proto(1 << 40), ONNX_MEMORY_BUDGET_BYTES).unwrap_err();
        assert!(err.contains("Range node 'r'"), "{err}");
        assert!(check_budget(&proto(1000), ONNX_MEMORY_BUDGET_BYTES).is_ok());
    }
}
