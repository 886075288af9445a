//! The model host as a real subprocess: `modelvet __host MODEL` with one end of a socketpair as
//! its fd 3, driven through the client API. Checks ONNX outputs against an in-process tract run,
//! the WASM example's accuracy against its generator, and that hostile models are stopped.

#[allow(dead_code)]
#[path = "../runner/src/host/channel.rs"]
mod channel;
#[allow(dead_code)]
#[path = "../runner/src/host/shared.rs"]
mod shared;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use channel::{ChannelError, HostClient, ModelErrorKind, ModelFormat, ModelInfo};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("modelvet-host-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Host {
    child: Child,
    stream: Option<UnixStream>,
}

impl Host {
    /// Spawns the real binary with the child's end of a socketpair as fd 3.
    fn spawn(model: &Path) -> Host {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelvet"));
        cmd.arg("__host")
            .arg(model)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let hook = move || -> std::io::Result<()> {
            let rc = if fd == 3 {
                // SAFETY: fcntl on fd 3, already the channel: only drops close-on-exec. It is
                // async-signal-safe, as required between fork and exec.
                unsafe { libc::fcntl(3, libc::F_SETFD, 0) }
            } else {
                // SAFETY: dup2 of the channel's fd onto 3 (the new fd has no close-on-exec); it is
                // async-signal-safe, as required between fork and exec.
                unsafe { libc::dup2(fd, 3) }
            };
            if rc == -1 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY: the hook runs between fork and exec and only calls dup2/fcntl; it allocates
        // nothing and takes no lock.
        unsafe { cmd.pre_exec(hook) };
        let child = cmd.spawn().unwrap();
        drop(theirs);
        Host {
            child,
            stream: Some(ours),
        }
    }

    fn connect(&mut self, timeout: Duration) -> Result<(HostClient, ModelInfo), ChannelError> {
        HostClient::connect(self.stream.take().unwrap(), timeout)
    }

    /// Waits for the host to exit (bounded), returning its status, stdout and stderr.
    fn finish(mut self, within: Duration) -> (ExitStatus, String, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!("the host did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (mut out, mut err) = (String::new(), String::new());
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, out, err)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- ONNX -------------------------------------------------------------------------------------

/// A deterministic pseudo-random stream for weights and inputs.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

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
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn initializer(name: &str, dims: &[i64], values: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: values,
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: format!("{op}_{output}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// MLP 64-16-10 with softmax and a symbolic batch named `batch`.
fn mlp_model() -> pb::ModelProto {
    let mut rng = Lcg(7);
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(pb::GraphProto {
            name: "mlp".into(),
            node: vec![
                node("MatMul", &["x", "W1"], "h0"),
                node("Add", &["h0", "b1"], "h1"),
                node("Relu", &["h1"], "h"),
                node("MatMul", &["h", "W2"], "o0"),
                node("Add", &["o0", "b2"], "logits"),
                node("Softmax", &["logits"], "probs"),
            ],
            initializer: vec![
                initializer("W1", &[64, 16], rng.vec(64 * 16)),
                initializer("b1", &[16], rng.vec(16)),
                initializer("W2", &[16, 10], rng.vec(160)),
                initializer("b2", &[10], rng.vec(10)),
            ],
            input: vec![value_info("x", &[Err("batch"), Ok(64)])],
            output: vec![value_info("probs", &[Err("batch"), Ok(10)])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The independent in-process run: tract's own optimised plan, no host code involved.
fn tract_run(path: &Path, input: &[f32], shape: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let plan = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let tensor = Tensor::from_shape(shape, input).unwrap();
    let out = plan.run(tvec![tensor.into_tvalue()]).unwrap();
    let out = out[0].cast_to::<f32>().unwrap();
    let values = out
        .try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec();
    (values, out.shape().to_vec())
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
            "{what}[{i}]: host {a} vs in-process {b}"
        );
    }
}

#[test]
fn onnx_outputs_equal_an_in_process_tract_run_at_several_batch_sizes() {
    let dir = scratch("mlp");
    let path = dir.join("mlp.onnx");
    std::fs::write(&path, mlp_model().encode_to_vec()).unwrap();
    let mut host = Host::spawn(&path);
    let (mut client, info) = host.connect(Duration::from_secs(60)).unwrap();
    assert_eq!(info.format, ModelFormat::Onnx);
    assert_eq!(info.inputs[0].name, "x");
    assert_eq!(
        info.inputs[0].shape,
        vec![serde_json::json!("batch"), serde_json::json!(64)]
    );
    assert_eq!(info.outputs[0].name, "probs");
    let mut rng = Lcg(99);
    for batch in [1usize, 5, 32] {
        let input = rng.vec(batch * 64);
        let got = client.infer(&input, &[batch, 64]).unwrap();
        let (want, want_shape) = tract_run(&path, &input, &[batch, 64]);
        assert_eq!(got.shape, want_shape);
        assert_close(&got.output, &want, &format!("batch {batch}"));
        assert!(got.events.is_empty());
    }
    // A wrong shape is an error reply; the host keeps serving.
    match client.infer(&[0.0; 63], &[1, 63]) {
        Err(ChannelError::Model {
            kind: ModelErrorKind::Shape,
            message,
            ..
        }) => {
            assert!(message.contains("[1, 63]"), "{message}")
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    assert!(client.infer(&[0.5; 64], &[1, 64]).is_ok());
    // An empty batch and non-finite values are answers or model errors, never a dead host.
    match client.infer(&[], &[0, 64]) {
        Ok(got) => assert_eq!(got.shape, vec![0, 10]),
        Err(ChannelError::Model { .. }) => {}
        Err(e) => panic!("empty batch: {e}"),
    }
    let odd: Vec<f32> = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE / 4.0,
    ]
    .repeat(16);
    let got = client.infer(&odd, &[1, 64]).unwrap();
    assert_eq!(got.shape, vec![1, 10]);
    client.close().unwrap();
    let (status, stdout, _) = host.finish(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fixture_zoo_models_match_in_process_tract() {
    let dir = repo().join("tests/fixtures/models");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    paths.sort();
    for path in paths {
        let mut host = Host::spawn(&path);
        let (mut client, info) = host.connect(Duration::from_secs(60)).unwrap();
        let shape: Vec<usize> = info.inputs[0]
            .shape
            .iter()
            .map(|d| d.as_u64().map_or(3, |v| v as usize))
            .collect();
        let count: usize = shape.iter().product();
        let input: Vec<f32> = Lcg(count as u64)
            .vec(count)
            .into_iter()
            .map(|v| (v + 1.0) / 2.0)
            .collect();
        let got = client.infer(&input, &shape).unwrap();
        let (want, want_shape) = tract_run(&path, &input, &shape);
        assert_eq!(got.shape, want_shape, "{}", path.display());
        assert_close(&got.output, &want, &path.display().to_string());
        client.close().unwrap();
        assert!(host.finish(Duration::from_secs(10)).0.success());
    }
}

#[test]
fn truncated_and_corrupt_onnx_give_a_load_error_without_panic_or_hang() {
    let dir = scratch("corrupt");
    let good = mlp_model().encode_to_vec();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.onnx", good[..good.len() / 2].to_vec()),
        (
            "garbage.onnx",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("empty.onnx", Vec::new()),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut host = Host::spawn(&path);
        match host.connect(Duration::from_secs(30)) {
            Err(ChannelError::Model {
                kind: ModelErrorKind::Load,
                message,
                ..
            }) => {
                assert!(!message.is_empty(), "{name}")
            }
            Err(e) => panic!("{name}: expected a load error, got {e}"),
            Ok(_) => panic!("{name}: expected a load error, the host loaded it"),
        }
        let (status, _, stderr) = host.finish(Duration::from_secs(10));
        assert!(status.success(), "{name}: {status}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn onnx_declaring_terabytes_is_refused_before_allocating() {
    let dir = scratch("huge");
    let mut proto = mlp_model();
    let graph = proto.graph.as_mut().unwrap();
    // W1 claims 2^20 x 2^20 floats (4 TiB) with no data behind it.
    graph.initializer[0].dims = vec![1 << 20, 1 << 20];
    graph.initializer[0].float_data.clear();
    let path = dir.join("huge.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    let started = Instant::now();
    let mut host = Host::spawn(&path);
    match host.connect(Duration::from_secs(30)) {
        Err(ChannelError::Model {
            kind: ModelErrorKind::Load,
            message,
            ..
        }) => {
            assert!(
                message.contains("TiB") && message.contains("refused before allocating"),
                "{message}"
            )
        }
        other => panic!("expected a refusal, got {:?}", other.map(|(_, info)| info)),
    }
    assert!(host.finish(Duration::from_secs(10)).0.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- WASM -------------------------------------------------------------------------------------

fn wasm_example(name: &str) -> PathBuf {
    repo().join("examples/wasm").join(name)
}

fn digits_test_split() -> (Vec<f32>, Vec<usize>) {
    let file = std::fs::File::open(repo().join("../shared/datasets/digits.csv.gz")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        if i % 5 != 0 {
            continue;
        }
        let values: Vec<f32> = line.split(',').map(|v| v.trim().parse().unwrap()).collect();
        x.extend(values[..64].iter().map(|v| v / 16.0));
        y.push(values[64] as usize);
    }
    (x, y)
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

#[test]
fn wasm_example_accuracy_equals_the_generators() {
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(wasm_example("digits_model.json")).unwrap())
            .unwrap();
    let (x, y) = digits_test_split();
    assert_eq!(summary["test_count"].as_u64().unwrap() as usize, y.len());

    let mut host = Host::spawn(&wasm_example("digits_model.wat"));
    let (mut client, info) = host.connect(Duration::from_secs(60)).unwrap();
    assert_eq!(info.format, ModelFormat::Wasm);
    assert_eq!(
        info.inputs[0].shape,
        vec![
            serde_json::json!("N"),
            serde_json::json!(8),
            serde_json::json!(8)
        ]
    );
    assert_eq!(
        info.outputs[0].shape,
        vec![serde_json::json!("N"), serde_json::json!(10)]
    );
    let mut correct = 0;
    for (xs, ys) in x.chunks(64 * 50).zip(y.chunks(50)) {
        let got = client.infer(xs, &[ys.len(), 8, 8]).unwrap();
        assert_eq!(got.shape, vec![ys.len(), 10]);
        assert!(
            got.events.is_empty(),
            "the example model makes no WASI calls"
        );
        correct += got
            .output
            .chunks(10)
            .zip(ys)
            .filter(|(row, label)| argmax(row) == **label)
            .count();
    }
    assert_eq!(correct as u64, summary["correct"].as_u64().unwrap());
    // The flat [N, 64] form is accepted too.
    assert!(client.infer(&x[..64], &[1, 64]).is_ok());
    client.close().unwrap();
    assert!(host.finish(Duration::from_secs(10)).0.success());
}

#[test]
fn hostile_loop_times_out_within_the_deadline_and_the_host_survives() {
    let mut host = Host::spawn(&wasm_example("hostile_loop.wat"));
    let (mut client, _) = host.connect(Duration::from_secs(30)).unwrap();
    client.set_call_deadline(Duration::from_millis(300));
    for _ in 0..2 {
        let started = Instant::now();
        match client.infer(&[0.0; 64], &[1, 64]) {
            Err(ChannelError::Model {
                kind: ModelErrorKind::Timeout,
                message,
                ..
            }) => {
                assert!(message.contains("deadline"), "{message}")
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }
    client.close().unwrap();
    assert!(host.finish(Duration::from_secs(10)).0.success());
}

#[test]
fn hostile_grow_is_stopped_at_the_memory_cap() {
    let mut host = Host::spawn(&wasm_example("hostile_grow.wat"));
    let (mut client, _) = host.connect(Duration::from_secs(30)).unwrap();
    let started = Instant::now();
    match client.infer(&[0.0; 64], &[1, 64]) {
        Err(ChannelError::Model {
            kind: ModelErrorKind::Memory,
            message,
            ..
        }) => {
            assert!(message.contains("memory cap"), "{message}")
        }
        other => panic!("expected a memory error, got {other:?}"),
    }
    // Growth must not copy the memory each time (it did with a zero reservation: 20 s).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    client.close().unwrap();
    assert!(host.finish(Duration::from_secs(10)).0.success());
}

#[test]
fn hostile_path_open_is_recorded_with_its_path_and_denied() {
    let mut host = Host::spawn(&wasm_example("hostile_path_open.wat"));
    let (mut client, _) = host.connect(Duration::from_secs(30)).unwrap();
    let got = client.infer(&[0.0; 64], &[1, 64]).unwrap();
    assert_eq!(got.output, vec![0.0; 10]);
    let open = got
        .events
        .iter()
        .find(|e| e.import == "path_open")
        .expect("path_open recorded");
    assert_eq!(open.args["path"], "/etc/passwd");
    assert_eq!(open.result, Some(76), "ENOTCAPABLE");
    let read = got
        .events
        .iter()
        .find(|e| e.import == "fd_read")
        .expect("fd_read recorded");
    assert_eq!(read.result, Some(8), "EBADF");
    let write = got
        .events
        .iter()
        .find(|e| e.import == "fd_write")
        .expect("fd_write recorded");
    assert_eq!(write.args["fd"], 1);
    assert_eq!(write.args["text"], "stolen:");
    client.close().unwrap();
    let (status, stdout, _) = host.finish(Duration::from_secs(10));
    assert!(status.success());
    assert!(
        stdout.is_empty(),
        "the model's fd_write reached the host's stdout: {stdout:?}"
    );
}

#[test]
fn hostile_clock_reads_are_recorded_and_seeded_runs_agree() {
    let run = || {
        let mut host = Host::spawn(&wasm_example("hostile_clock.wat"));
        let (mut client, _) = host.connect(Duration::from_secs(30)).unwrap();
        let got = client.infer(&vec![0.25; 64 * 16], &[16, 64]).unwrap();
        client.close().unwrap();
        assert!(host.finish(Duration::from_secs(10)).0.success());
        got
    };
    let (first, second) = (run(), run());
    let clock = first
        .events
        .iter()
        .find(|e| e.import == "clock_time_get")
        .expect("clock read recorded");
    assert_eq!(clock.args["clock_id"], 0);
    assert_eq!(clock.args["clock"], "realtime");
    let randoms = first
        .events
        .iter()
        .filter(|e| e.import == "random_get")
        .count();
    assert_eq!(randoms, 16, "one random read per sample");
    let classes: Vec<usize> = first.output.chunks(10).map(argmax).collect();
    assert!(
        classes.contains(&7) && classes.contains(&0),
        "the bomb is armed and random: {classes:?}"
    );
    assert_eq!(
        first.output, second.output,
        "random_get is seeded: same answers run to run"
    );
}

#[test]
fn a_dead_host_is_closed_and_a_silent_one_times_out() {
    // Dead: a host killed mid-session (as a crashing model would) reads as Closed, not a hang.
    let mut host = Host::spawn(&wasm_example("digits_model.wat"));
    let (mut client, _) = host.connect(Duration::from_secs(30)).unwrap();
    host.child.kill().unwrap();
    host.child.wait().unwrap();
    let started = Instant::now();
    assert!(matches!(
        client.infer(&[0.0; 64], &[1, 64]),
        Err(ChannelError::Closed)
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Silent: a peer that never answers is a timeout.
    let (_peer, ours) = UnixStream::pair().unwrap();
    let started = Instant::now();
    assert!(matches!(
        HostClient::connect(ours, Duration::from_millis(200)),
        Err(ChannelError::Timeout)
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// The model hosts turn a panic of tract on a hostile graph into an error by catching it. The
/// binary starts through its own entry and with its own section layout (runner/src/start.rs,
/// runner/entry.ld): a layout whose unwind tables the unwinder cannot find makes every panic an
/// abort (a variant that moved `.eh_frame_hdr` did exactly that, with every other test green).
#[test]
fn a_panic_in_the_binary_unwinds_and_is_caught() {
    let out = Command::new(env!("CARGO_BIN_EXE_modelvet"))
        .arg("__unwind-check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "unwinding: ok");
}
