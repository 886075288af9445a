//! The model host: `modelvet __host MODEL` loads one untrusted ONNX or WASM model and answers
//! inference requests over the channel (see `channel`). It runs inside the sandbox, so it keeps to
//! one thread for tract and a single epoch-ticker thread for wasmtime.

#[allow(dead_code)] // the client half is called by `probe` and the tests, not by the host
pub mod channel;
mod chunks;
mod conv;
mod dense;
mod onnx;
mod plan;
mod pool;
pub mod shared;
mod wasm;

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use thiserror::Error;
use tract_onnx::prelude::Tensor;

use channel::{
    ChannelError, ClientMessage, FrameIo, HostEvent, HostMessage, ModelErrorKind, ModelInfo,
    shape_elements,
};

#[allow(unused_imports)] // the public face of the host for the probe command and benchmarks
pub use channel::{HostClient, Inference, MAX_FRAME_BYTES, ModelFormat, TensorInfo};
#[allow(unused_imports)]
pub use onnx::ONNX_MEMORY_BUDGET_BYTES;
#[allow(unused_imports)]
pub use wasm::{DEFAULT_CALL_DEADLINE, RANDOM_SEED, WASM_MEMORY_CAP_BYTES};

/// Largest model file the host reads. Defends against a multi-gigabyte file filling memory
/// before any budget check; it equals the ONNX budget since initializers live in the file.
const MAX_MODEL_FILE_BYTES: u64 = ONNX_MEMORY_BUDGET_BYTES;

#[derive(Debug, Error)]
pub enum HostError {
    #[error("cannot serve the model: {0}")]
    Channel(#[from] ChannelError),
}

/// A failed request: the model's fault, reported to the client as an `Error` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelError {
    pub kind: ModelErrorKind,
    pub message: String,
}

impl ModelError {
    pub fn new(kind: ModelErrorKind, message: impl Into<String>) -> Self {
        ModelError {
            kind,
            message: message.into(),
        }
    }
}

/// Shape as reported: known dims as integers, symbolic ones as their names.
fn tensor_shape_json(dims: &[Option<i64>], names: &[String]) -> Vec<serde_json::Value> {
    dims.iter()
        .zip(names)
        .map(|(d, name)| match d {
            Some(v) => serde_json::Value::from(*v),
            None => serde_json::Value::from(name.clone()),
        })
        .collect()
}

enum LoadedModel {
    Onnx(onnx::OnnxModel),
    Wasm(wasm::WasmModel),
}

impl LoadedModel {
    fn info(&self) -> &ModelInfo {
        match self {
            LoadedModel::Onnx(m) => m.info(),
            LoadedModel::Wasm(m) => m.info(),
        }
    }
}

/// Reads and loads a model; the format comes from the extension, else from the content.
/// Where the model's bytes come from: its path, or a descriptor opened by the supervisor.
pub enum Source {
    Path,
    Fd(std::fs::File),
}

fn load(path: &Path, source: Source) -> Result<LoadedModel, String> {
    use std::io::Read;
    let file = match source {
        Source::Fd(f) => f,
        Source::Path => {
            std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if meta.len() > MAX_MODEL_FILE_BYTES {
        return Err(format!(
            "{} is {} bytes, over the host's {MAX_MODEL_FILE_BYTES}-byte limit",
            path.display(),
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_MODEL_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let looks_wasm =
        bytes.starts_with(b"\0asm") || bytes.trim_ascii_start().starts_with(b"(module");
    match ext.as_deref() {
        Some("wasm" | "wat") => wasm::load(&bytes).map(LoadedModel::Wasm),
        Some("onnx") => onnx::load(&bytes).map(LoadedModel::Onnx),
        _ if looks_wasm => wasm::load(&bytes).map(LoadedModel::Wasm),
        _ => onnx::load(&bytes).map(LoadedModel::Onnx),
    }
}

/// One ONNX request: the payload lands straight in tract's input tensor (one copy off the
/// socket) and the output is written from tract's own buffer. The outer error is the channel's,
/// the inner one the model's (not yet replied).
fn serve_onnx(
    io: &mut FrameIo<UnixStream>,
    model: &mut onnx::OnnxModel,
    shape: &[usize],
    input: Input<'_>,
) -> Result<Result<(), ModelError>, ChannelError> {
    let tensor = match input {
        // One copy, out of the shared slot into a fresh tensor (as an in-process caller makes).
        Input::Shared(values) => Tensor::from_shape(shape, values)
            .map_err(|e| ChannelError::Protocol(format!("shape {shape:?}: {e}")))?,
        Input::Socket => {
            let mut tensor = Tensor::zero::<f32>(shape)
                .map_err(|e| ChannelError::Protocol(format!("shape {shape:?}: {e}")))?;
            {
                let mut view = tensor
                    .try_as_plain_ram_mut()
                    .map_err(|e| ChannelError::Protocol(e.to_string()))?;
                let values = view
                    .as_slice_mut::<f32>()
                    .map_err(|e| ChannelError::Protocol(e.to_string()))?;
                io.recv_tensor_into(values)?;
            }
            tensor
        }
    };
    let output = match model.run(tensor) {
        Ok(output) => output,
        Err(e) => return Ok(Err(e)),
    };
    let values = match onnx::f32_slice(&output) {
        Ok(values) => values,
        Err(e) => return Ok(Err(e)),
    };
    let reply = HostMessage::Output {
        shape: output.shape().to_vec(),
        events: Vec::new(),
    };
    io.send(&reply, Some(values))?;
    Ok(Ok(()))
}

/// Serves `model` on `stream` until the client says goodbye or hangs up. A model that fails to
/// load is reported to the client (`LoadError`) and is not an error of the host.
/// The model's bytes are read from `source`; `model` names it and gives its kind by extension.
/// Where a request's tensor is: in the shared region, or next on the socket.
enum Input<'a> {
    Shared(&'a [f32]),
    Socket,
}

pub fn serve_from(
    model: &Path,
    source: Source,
    stream: UnixStream,
    shared: Option<shared::SharedView>,
) -> Result<(), HostError> {
    let mut io = FrameIo::new(stream);
    let mut model = match load(model, source) {
        Ok(m) => m,
        Err(message) => {
            io.send(&HostMessage::LoadError { message }, None)?;
            return Ok(());
        }
    };
    let events = match &mut model {
        LoadedModel::Wasm(m) => m.take_load_events(),
        LoadedModel::Onnx(_) => Vec::new(),
    };
    io.send(
        &HostMessage::Hello {
            model: model.info().clone(),
            events,
        },
        None,
    )?;

    let (mut input, mut output, mut out_shape) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let msg = match io.recv::<ClientMessage>() {
            Ok(msg) => msg,
            Err(ChannelError::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let (shape, deadline_ms, offset) = match msg {
            ClientMessage::Bye => {
                io.send(&HostMessage::Bye, None)?;
                return Ok(());
            }
            ClientMessage::Infer {
                shape,
                deadline_ms,
                shared: offset,
            } => (shape, deadline_ms, offset),
        };
        let elements = shape_elements(&shape).map_err(ChannelError::Protocol)?;
        let input_at = match (offset, &shared) {
            (None, _) => Input::Socket,
            (Some(offset), Some(view)) => Input::Shared(
                view.slice(offset, elements)
                    .map_err(ChannelError::Protocol)?,
            ),
            (Some(_), None) => {
                return Err(
                    ChannelError::Protocol("a shared tensor but no shared region".into()).into(),
                );
            }
        };
        let deadline = deadline_ms.map_or(DEFAULT_CALL_DEADLINE, Duration::from_millis);
        let mut events: Vec<HostEvent> = Vec::new();
        let result = match &mut model {
            LoadedModel::Onnx(m) => match serve_onnx(&mut io, m, &shape, input_at)? {
                Ok(()) => continue,
                Err(e) => Err(e),
            },
            LoadedModel::Wasm(m) => {
                match input_at {
                    Input::Shared(values) => {
                        input.clear();
                        input.extend_from_slice(values);
                    }
                    Input::Socket => io.recv_tensor(elements, &mut input)?,
                }
                m.infer(
                    &input,
                    &shape,
                    deadline,
                    &mut output,
                    &mut out_shape,
                    &mut events,
                )
            }
        };
        match result {
            Ok(()) => io.send(
                &HostMessage::Output {
                    shape: out_shape.clone(),
                    events,
                },
                Some(&output),
            )?,
            Err(ModelError { kind, message }) => io.send(
                &HostMessage::Error {
                    message,
                    kind,
                    events,
                },
                None,
            )?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn serve_answers_hello_infer_error_and_bye_in_process() {
        let dir = std::env::temp_dir().join(format!("modelvet-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("linear.onnx");
        let w = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        std::fs::write(
            &path,
            onnx::tests::linear_model(&w, &[0.0, 0.5], Err("batch")).encode_to_vec(),
        )
        .unwrap();

        let (host_end, client_end) = UnixStream::pair().unwrap();
        let served = path.clone();
        let host = std::thread::spawn(move || serve_from(&served, Source::Path, host_end, None));
        let (mut client, info) = HostClient::connect(client_end, Duration::from_secs(30)).unwrap();
        assert_eq!(info.format, ModelFormat::Onnx);
        assert_eq!(info.inputs[0].shape[0], "batch");
        let got = client.infer(&[1.0, 2.0, 3.0], &[1, 3]).unwrap();
        assert_eq!(got.shape, vec![1, 2]);
        assert_eq!(got.output, vec![4.0, 5.5]);
        match client.infer(&[0.0; 4], &[1, 4]) {
            Err(ChannelError::Model {
                kind: ModelErrorKind::Shape,
                ..
            }) => {}
            other => panic!("expected a shape error, got {other:?}"),
        }
        client.close().unwrap();
        host.join().unwrap().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_model_is_a_load_error_reply() {
        let (host_end, client_end) = UnixStream::pair().unwrap();
        let host = std::thread::spawn(move || {
            serve_from(
                Path::new("/nonexistent/model.onnx"),
                Source::Path,
                host_end,
                None,
            )
        });
        match HostClient::connect(client_end, Duration::from_secs(10)) {
            Err(ChannelError::Model {
                kind: ModelErrorKind::Load,
                message,
                ..
            }) => assert!(message.contains("cannot open")),
            Err(e) => panic!("expected a load error, got {e}"),
            Ok(_) => panic!("expected a load error"),
        }
        host.join().unwrap().unwrap();
    }
}
