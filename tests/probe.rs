//! `modelvet probe` end to end: real fixture models loaded by the model host inside the sandbox,
//! checked against an independent in-process tract run; hostile WASM and broken ONNX models
//! stopped and recorded; bad inputs refused with exit 2.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{Array2, ArrayD};
use ndarray_npy::ReadNpyExt;
use serde_json::Value;

mod common;
use tract_onnx::prelude::*;

fn modelvet() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_modelvet"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn fixture(p: &str) -> PathBuf {
    root().join("tests/fixtures").join(p)
}

struct Run {
    code: i32,
    report: Value,
    stderr: String,
}

fn probe(model: &Path, opts: &[&str]) -> Run {
    let out = Command::new(modelvet())
        .arg("probe")
        .arg(model)
        .args(["--format", "json"])
        .args(opts)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    Run {
        code: out.status.code().unwrap_or(-1),
        report,
        stderr,
    }
}

fn rules(r: &Run) -> Vec<String> {
    r.report["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["rule"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Accuracy computed in this process by tract on the same inputs, as an independent reference.
fn tract_accuracy(model: &Path, x: &Path, y: &Path, sample: &[usize]) -> f64 {
    let xs: Array2<f32> = Array2::read_npy(std::fs::File::open(x).unwrap()).unwrap();
    let ys: ArrayD<i64> = ArrayD::read_npy(std::fs::File::open(y).unwrap()).unwrap();
    let n = xs.nrows();
    let mut shape = vec![n];
    shape.extend_from_slice(sample);
    let plan = tract_onnx::onnx()
        .model_for_path(model)
        .unwrap()
        .with_input_fact(0, f32::fact(shape.clone()).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input: Vec<f32> = xs.iter().copied().collect();
    let tensor = Tensor::from_shape(&shape, &input).unwrap();
    let out = plan.run(tvec![tensor.into_tvalue()]).unwrap();
    let out = out[0].cast_to::<f32>().unwrap();
    let classes = out.shape()[1];
    let flat: Vec<f32> = out
        .try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec();
    let correct = flat
        .chunks(classes)
        .zip(ys.iter())
        .filter(|(row, y)| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
            best as i64 == **y
        })
        .count();
    correct as f64 / n as f64
}

#[test]
fn accuracy_in_the_sandbox_equals_an_in_process_tract_run() {
    for (model, sample) in [
        ("mnist_mlp_clean_a.onnx", vec![784]),
        ("mnist_cnn_patch_tr.onnx", vec![1, 28, 28]),
    ] {
        let m = fixture(&format!("models/{model}"));
        let x = fixture("data/mnist_val_x.npy");
        let y = fixture("data/mnist_val_y.npy");
        let r = probe(
            &m,
            &[
                "--inputs",
                x.to_str().unwrap(),
                "--labels",
                y.to_str().unwrap(),
                "--probes",
                "validation",
            ],
        );
        assert_eq!(r.report["schema"], "modelvet.probe/1", "{}", r.stderr);
        let reported = r.report["probes"]["validation"]["accuracy"]
            .as_f64()
            .unwrap();
        let expected = tract_accuracy(&m, &x, &y, &sample);
        assert_eq!(
            reported, expected,
            "{model}: sandboxed accuracy differs from in-process tract"
        );
        assert!(expected > 0.85);
        let confusion = r.report["probes"]["validation"]["confusion"]
            .as_array()
            .unwrap();
        let total: u64 = confusion
            .iter()
            .flat_map(|row| row.as_array().unwrap())
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(total, 500);
        // The model's interface is reported, symbolic batch included.
        assert!(
            r.report["model"]["inputs"][0]["shape"][0]
                .as_str()
                .is_some()
        );
        assert_eq!(r.report["target"]["format"], "onnx");
        assert_eq!(
            r.report["sandbox"]["exit"]["status"], "exited",
            "{:#}",
            r.report["sandbox"]["exit"]
        );
    }
}

#[test]
fn backdoored_model_is_flagged_and_its_triggered_inputs_caught_by_strip() {
    let m = fixture("models/mnist_cnn_patch_tr.onnx");
    let r = probe(
        &m,
        &[
            "--inputs",
            fixture("data/mnist_val_x.npy").to_str().unwrap(),
            "--check",
            fixture("data/mnist_cnn_patch_tr_triggered_x.npy")
                .to_str()
                .unwrap(),
            "--probes",
            "strip,trigger",
        ],
    );
    let t = &r.report["probes"]["trigger"];
    assert_eq!(t["suspected"], true, "{t:#}");
    assert_eq!(t["target_class"], 3);
    let strip = &r.report["probes"]["strip"];
    assert_eq!(strip["blend"], "sum-clip");
    let flagged = strip["flagged"].as_u64().unwrap() as f64;
    let judged = strip["inputs"].as_array().unwrap().len() as f64;
    assert!(
        flagged / judged > 0.9,
        "STRIP caught only {flagged} of {judged}"
    );
    assert!(rules(&r).contains(&"backdoor.suspected".to_string()));
    assert!(rules(&r).contains(&"backdoor.strip-flagged-input".to_string()));
    assert_eq!(r.code, 1);
}

#[test]
fn wasm_example_model_classifies_digits_and_is_clean() {
    let r = probe(
        &root().join("examples/wasm/digits_model.wat"),
        &[
            "--inputs",
            fixture("data/digits_val_x.npy").to_str().unwrap(),
            "--labels",
            fixture("data/digits_val_y.npy").to_str().unwrap(),
            "--probes",
            "validation,random,edge",
        ],
    );
    assert_eq!(r.report["target"]["format"], "wasm");
    assert!(
        r.report["probes"]["validation"]["accuracy"]
            .as_f64()
            .unwrap()
            > 0.9,
        "{:#}",
        r.report["probes"]
    );
    assert_eq!(r.report["verdict"], "pass", "{:#}", r.report["findings"]);
    assert_eq!(r.code, 0);
}

#[test]
fn wasm_model_opening_a_file_is_recorded_and_denied() {
    let r = probe(
        &root().join("examples/wasm/hostile_path_open.wat"),
        &["--probes", "random"],
    );
    let events = r.report["sandbox"]["events"].as_array().unwrap();
    let opens: Vec<&Value> = events
        .iter()
        .filter(|e| e["syscall"] == "wasi:path_open")
        .collect();
    assert!(!opens.is_empty(), "{events:#?}");
    assert!(opens.iter().all(|e| e["action"] == "denied"));
    assert!(
        opens.iter().any(|e| e["detail"]["path"]
            .as_str()
            .is_some_and(|p| p.contains("passwd"))),
        "{opens:#?}"
    );
    assert!(rules(&r).contains(&"wasm.file-access".to_string()));
    assert_eq!(r.report["verdict"], "fail");
}

#[test]
fn wasm_model_looping_forever_is_stopped_as_a_hang() {
    let t = std::time::Instant::now();
    let r = probe(
        &root().join("examples/wasm/hostile_loop.wat"),
        &["--probes", "random,edge", "--timeout", "20"],
    );
    assert!(
        rules(&r).contains(&"model.hang".to_string()),
        "{:#}",
        r.report["findings"]
    );
    let cases = r.report["probes"]["edge"]["cases"].as_array().unwrap();
    assert!(cases.iter().any(|c| c["outcome"] == "timeout"));
    assert!(
        t.elapsed().as_secs() < 60,
        "the loop was not stopped in time"
    );
}

#[test]
fn wasm_model_growing_memory_is_stopped_at_the_cap() {
    let r = probe(
        &root().join("examples/wasm/hostile_grow.wat"),
        &["--probes", "edge"],
    );
    assert!(
        rules(&r).contains(&"model.memory-cap".to_string()),
        "{:#}",
        r.report["findings"]
    );
    assert_ne!(
        r.report["sandbox"]["exit"]["status"], "memory",
        "the cap, not the cgroup, must stop it"
    );
}

#[test]
fn wasm_model_reading_the_clock_is_recorded() {
    let r = probe(
        &root().join("examples/wasm/hostile_clock.wat"),
        &["--probes", "random"],
    );
    assert!(
        rules(&r).contains(&"wasm.clock".to_string()),
        "{:#}",
        r.report["findings"]
    );
    assert!(
        r.report["sandbox"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["syscall"] == "wasi:clock_time_get")
    );
}

#[test]
fn truncated_onnx_is_a_finding_not_a_crash() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let bytes = std::fs::read(fixture("models/mnist_mlp_clean_a.onnx")).unwrap();
    let cut = dir.join("truncated.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let t = std::time::Instant::now();
    let r = probe(&cut, &[]);
    assert!(t.elapsed().as_secs() < 30);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        rules(&r).contains(&"model.load-failed".to_string()),
        "{:#}",
        r.report["findings"]
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\x08\x07\x12\xff\xff\xff\xff\x0fnot a model").unwrap();
    let r = probe(&garbage, &[]);
    assert!(rules(&r).contains(&"model.load-failed".to_string()));
}

/// An ONNX graph whose input declares 2^40 floats per sample: refused before allocating.
#[test]
fn model_declaring_terabytes_is_refused_with_a_finding() {
    use prost::Message;
    use tract_onnx::pb;
    let dim = |v: i64| pb::tensor_shape_proto::Dimension {
        value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)),
        ..Default::default()
    };
    let vi = |name: &str| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![dim(1), dim(1 << 40)],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(pb::GraphProto {
            name: "huge".into(),
            node: vec![pb::NodeProto {
                op_type: "Relu".into(),
                input: vec!["x".into()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            input: vec![vi("x")],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("terabytes.onnx");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    let r = probe(&path, &["--memory", "512M"]);
    assert!(
        rules(&r).contains(&"model.load-failed".to_string()),
        "{:#}",
        r.report
    );
    let msg = r.report["findings"][0]["message"].as_str().unwrap_or("");
    assert!(msg.contains("budget") || msg.contains("bytes"), "{msg}");
    assert_ne!(r.report["sandbox"]["exit"]["status"], "memory");
}

#[test]
fn inputs_of_the_wrong_shape_are_a_usage_error_naming_both_shapes() {
    let r = probe(
        &fixture("models/mnist_mlp_clean_a.onnx"),
        &[
            "--inputs",
            fixture("data/digits_val_x.npy").to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2);
    let line = r.stderr.lines().last().unwrap_or("");
    assert!(
        line.contains("[300, 64]") && line.contains("784"),
        "{}",
        r.stderr
    );
}

#[test]
fn missing_model_is_exit_2() {
    let r = probe(Path::new("/nonexistent/model.onnx"), &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("/nonexistent/model.onnx"));
}

/// Regression: the host runs as an unused uid, so a model readable only by its owner (0600) did
/// not load; the supervisor now opens it and hands the descriptor over.
#[test]
fn a_model_readable_only_by_its_owner_still_loads() {
    use std::os::unix::fs::PermissionsExt;
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("owner-only.onnx");
    std::fs::copy(fixture("models/mnist_mlp_clean_a.onnx"), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = probe(&path, &["--probes", "random"]);
    assert!(
        !rules(&r).contains(&"model.load-failed".to_string()),
        "{:#}",
        r.report["findings"]
    );
    assert_eq!(r.report["model"]["inputs"][0]["name"], "input");
    assert_eq!(r.code, 0);
}

#[test]
fn a_host_killed_at_the_wall_limit_is_a_timeout_not_a_crash() {
    let r = probe(
        &fixture("models/mnist_cnn_clean_a.onnx"),
        &[
            "--inputs",
            fixture("data/mnist_val_x.npy").to_str().unwrap(),
            // STRIP calibration alone is then millions of CNN rows: far past the limit however
            // fast inference gets.
            "--strip-n",
            "5000",
            "--timeout",
            "1",
        ],
    );
    let rules = rules(&r);
    assert!(rules.contains(&"resource.timeout".to_string()), "{rules:?}");
    assert!(!rules.contains(&"model.crash".to_string()), "{rules:?}");
    assert_eq!(r.report["verdict"], "warn");
}

/// Live processes whose command line contains every one of `parts`.
fn processes_with(parts: &[&str]) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            parts.iter().all(|p| cmd.contains(p))
        })
        .count()
}

/// SIGTERM in the middle of a probe: the model host is stopped and its cgroups removed, no report
/// is written (it would judge the model on unfinished probes), and modelvet dies by the signal.
#[test]
fn an_interrupted_probe_stops_its_host_and_writes_no_report() {
    use std::os::unix::process::ExitStatusExt;
    // A copy under a name no other test uses, to find this run's host among the processes.
    let dir = std::env::temp_dir().join(format!("modelvet-intr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("interrupted.onnx");
    std::fs::copy(fixture("models/mnist_cnn_clean_a.onnx"), &model).unwrap();
    let model_s = model.to_str().unwrap().to_string();
    let child = Command::new(modelvet())
        .arg("probe")
        .arg(&model)
        .args(["--format", "json", "--inputs"])
        .arg(fixture("data/mnist_val_x.npy"))
        // STRIP alone (so that no later probe restarts the host), whose calibration is then
        // millions of CNN rows: the host is busy for long.
        .args(["--probes", "strip", "--strip-n", "5000", "--timeout", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while processes_with(&["__host", &model_s]) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the model host never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill(2) on the modelvet process we started and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGTERM),
        "{:?} {stderr}",
        out.status
    );
    assert!(out.stdout.is_empty(), "a report was written");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    assert_eq!(
        processes_with(&["__host", &model_s]),
        0,
        "the host survived"
    );
    let groups = common::groups_of(pid);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(groups.is_empty(), "cgroups left: {groups:?}");
}

/// A model declaring 2^24 classes (or samples of 2^24 values) it never computes: refused as an
/// unsupported shape before any probe sizes a buffer from it. The class count used to make the
/// random probes ask for 32 GiB and abort modelvet with no report.
#[test]
fn declared_shapes_too_large_to_probe_are_refused_not_allocated() {
    for (model, what) in [
        (
            "hostile_classes.wat",
            "classes; the probes take at most 4096",
        ),
        ("hostile_input.wat", "holds no value or more than 786432"),
    ] {
        let r = probe(
            &root().join("examples/wasm").join(model),
            &["--probes", "random,edge"],
        );
        let f = r.report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "model.unsupported-shape")
            .unwrap_or_else(|| panic!("{model}: {:#}", r.report["findings"]));
        assert!(f["message"].as_str().unwrap().contains(what), "{f:#}");
        assert!(
            r.report["probes"]["random"].is_null(),
            "{model}: probes ran"
        );
    }
}
