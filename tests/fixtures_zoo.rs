//! The committed fixture zoo (`tests/fixtures/`, written by `examples/train_fixtures.rs`) is what
//! the manifest says: every model loads in tract with a symbolic batch, its clean accuracy and
//! attack success rate recomputed on the committed data match the manifest, and backdoors work.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use serde_json::Value;
use tract_onnx::prelude::{Framework, InferenceModelExt, IntoRunnable, Tensor, TractResult, tvec};

const MIN_CLEAN_ACCURACY: f64 = 0.85;
const MIN_ATTACK_SUCCESS: f64 = 0.8;
const MIN_MODELS_PER_KIND: usize = 6;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models")
}

fn manifest() -> Value {
    let path = models_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("manifest.json parses")
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key} in {v}"))
}

fn read_x(rel: &str) -> Array2<f32> {
    ndarray_npy::read_npy(models_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn read_y(rel: &str) -> Array1<i64> {
    ndarray_npy::read_npy(models_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Predicted classes of `x` by the model, run as an optimised tract plan with a symbolic batch.
/// Returns the raw output rows too.
fn predict(model: &Value, x: &Array2<f32>) -> TractResult<(Vec<usize>, Vec<f32>)> {
    let path = models_dir().join(str_field(model, "file"));
    let plan = tract_onnx::onnx()
        .model_for_path(&path)?
        .into_optimized()?
        .into_runnable()?;
    let mut shape = vec![x.nrows()];
    for d in model["input_shape"].as_array().expect("input_shape")[1..].iter() {
        shape.push(d.as_u64().expect("numeric dim") as usize);
    }
    let data: Vec<f32> = x.iter().copied().collect();
    let out = plan.run(tvec!(Tensor::from_shape(&shape, &data)?.into()))?;
    let rows: Vec<f32> = out[0]
        .to_plain_array_view::<f32>()?
        .iter()
        .copied()
        .collect();
    let classes = model["classes"].as_u64().expect("classes") as usize;
    assert_eq!(
        rows.len(),
        x.nrows() * classes,
        "{}: output size",
        str_field(model, "name")
    );
    let pred = rows
        .chunks_exact(classes)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(0, |best, (k, &v)| if v > r[best] { k } else { best })
        })
        .collect();
    Ok((pred, rows))
}

#[test]
fn zoo_has_enough_clean_and_backdoored_models_of_each_kind() {
    let m = manifest();
    let models = m["models"].as_array().expect("models");
    let clean = models.iter().filter(|x| x["backdoor"].is_null()).count();
    let backdoored: Vec<&Value> = models.iter().filter(|x| !x["backdoor"].is_null()).collect();
    assert!(clean >= MIN_MODELS_PER_KIND, "{clean} clean models");
    assert!(
        backdoored.len() >= MIN_MODELS_PER_KIND,
        "{} backdoored models",
        backdoored.len()
    );
    for kind in ["patch", "blend"] {
        assert!(
            backdoored.iter().any(|b| b["backdoor"]["kind"] == kind),
            "no {kind} backdoor"
        );
    }
    for outputs in ["logits", "probabilities"] {
        assert!(
            models.iter().any(|x| x["outputs"] == outputs),
            "no model with {outputs} outputs"
        );
    }
    for ds in ["mnist", "digits"] {
        assert!(models.iter().any(|x| x["dataset"] == ds), "no {ds} model");
    }
}

#[test]
fn every_model_declares_a_symbolic_batch_and_runs_at_any_batch_size() {
    let m = manifest();
    for model in m["models"].as_array().expect("models") {
        let name = str_field(model, "name");
        let path = models_dir().join(str_field(model, "file"));
        let inference = tract_onnx::onnx().model_for_path(&path).expect("loads");
        let input = &inference
            .node(inference.input_outlets().expect("inputs")[0].node)
            .name;
        assert_eq!(input, str_field(model, "input_name"), "{name}: input name");
        // ONNX names tensors apart from the nodes that make them: tract keeps the tensor name as
        // the output outlet's label.
        let output = inference.outlet_label(inference.output_outlets().expect("outputs")[0]);
        assert_eq!(
            output,
            Some(str_field(model, "output_name")),
            "{name}: output name"
        );
        let typed = inference.into_typed().expect("typed");
        let batch = &typed.input_fact(0).expect("input fact").shape[0];
        assert!(
            batch.to_i64().is_err(),
            "{name}: batch dim {batch} is concrete"
        );
        let want = model["input_shape"][0]
            .as_str()
            .expect("symbolic batch dim in manifest");
        assert_eq!(batch.to_string(), want, "{name}: batch symbol");

        // One, three and all rows of the test split give the same outputs row by row.
        let ds = dataset(&m, model);
        let x = read_x(str_field(ds, "test_x"));
        let (_, all) = predict(model, &x).expect("tract runs");
        for n in [1, 3] {
            let (_, part) =
                predict(model, &x.slice(ndarray::s![..n, ..]).to_owned()).expect("tract runs");
            for (a, b) in part.iter().zip(&all) {
                assert!(
                    (a - b).abs() < 1e-4,
                    "{name}: batch of {n} gives {a}, full batch {b}"
                );
            }
        }
    }
}

fn dataset<'a>(m: &'a Value, model: &Value) -> &'a Value {
    m["datasets"]
        .as_array()
        .expect("datasets")
        .iter()
        .find(|d| d["name"] == model["dataset"])
        .expect("dataset entry")
}

#[test]
fn clean_accuracy_on_the_committed_test_split_matches_the_manifest() {
    let m = manifest();
    for model in m["models"].as_array().expect("models") {
        let name = str_field(model, "name");
        let ds = dataset(&m, model);
        let (x, y) = (
            read_x(str_field(ds, "test_x")),
            read_y(str_field(ds, "test_y")),
        );
        assert_eq!(x.nrows(), y.len());
        let (pred, rows) = predict(model, &x).expect("tract runs");
        let acc = pred
            .iter()
            .zip(y.iter())
            .filter(|(p, y)| **p as i64 == **y)
            .count() as f64
            / y.len() as f64;
        let want = model["clean_accuracy"].as_f64().expect("clean_accuracy");
        assert!(
            (acc - want).abs() < 1e-6,
            "{name}: accuracy {acc} recomputed, manifest {want}"
        );
        assert!(acc >= MIN_CLEAN_ACCURACY, "{name}: accuracy {acc}");
        if model["outputs"] == "probabilities" {
            for r in rows.chunks_exact(10) {
                let s: f32 = r.iter().sum();
                assert!(
                    (s - 1.0).abs() < 1e-4 && r.iter().all(|p| *p >= 0.0),
                    "{name}: row sums to {s}"
                );
            }
        }
    }
}

#[test]
fn backdoored_models_fire_on_their_committed_triggered_inputs() {
    let m = manifest();
    for model in m["models"].as_array().expect("models") {
        let b = &model["backdoor"];
        if b.is_null() {
            continue;
        }
        let name = str_field(model, "name");
        let target = b["target_class"].as_i64().expect("target_class");
        let (x, y) = (
            read_x(str_field(b, "triggered_x")),
            read_y(str_field(b, "triggered_y")),
        );
        assert!(
            x.nrows() >= 100 && x.nrows() == y.len(),
            "{name}: {} triggered inputs",
            x.nrows()
        );
        assert!(
            y.iter().all(|&l| l != target),
            "{name}: triggered set holds target-class inputs"
        );
        let (pred, _) = predict(model, &x).expect("tract runs");
        let asr = pred.iter().filter(|&&p| p as i64 == target).count() as f64 / pred.len() as f64;
        let want = b["attack_success_rate"]
            .as_f64()
            .expect("attack_success_rate");
        assert!(
            (asr - want).abs() < 1e-6,
            "{name}: ASR {asr} recomputed, manifest {want}"
        );
        assert!(asr >= MIN_ATTACK_SUCCESS, "{name}: ASR {asr}");
        let t = &b["trigger"];
        if b["kind"] == "blend" {
            let pattern = read_pattern(str_field(t, "pattern_file"));
            assert_eq!(pattern.len(), x.ncols(), "{name}: pattern size");
        } else {
            assert_patch_stamped(name, t, &x);
        }
    }
}

fn read_pattern(rel: &str) -> Array1<f32> {
    ndarray_npy::read_npy(models_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every triggered input carries the manifest's patch at its position.
fn assert_patch_stamped(name: &str, t: &Value, x: &Array2<f32>) {
    let num = |k: &str| {
        t[k].as_u64()
            .unwrap_or_else(|| panic!("{name}: trigger.{k}")) as usize
    };
    let (size, px, py) = (num("size"), num("x"), num("y"));
    let side = (x.ncols() as f64).sqrt() as usize;
    let checker = str_field(t, "pattern") == "checker";
    for row in x.rows() {
        for dy in 0..size {
            for dx in 0..size {
                let want = if !checker || (dx + dy).is_multiple_of(2) {
                    1.0
                } else {
                    0.0
                };
                assert_eq!(
                    row[(py + dy) * side + px + dx],
                    want,
                    "{name}: patch pixel ({dx},{dy})"
                );
            }
        }
    }
}
