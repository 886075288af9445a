//! The supervisor <-> model host channel: length-prefixed binary frames over a connected unix
//! stream socket. A frame is `u32 LE length | u8 kind | payload`; control frames carry one JSON
//! message, tensor frames carry raw little-endian f32 values. Both sides live here so the wire
//! format has one definition; this file depends on nothing else in the crate (tests include it).

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest frame either side accepts. Defends against a corrupt or hostile length prefix making
/// the reader allocate gigabytes; 256 MiB holds a batch of 20,000 ImageNet-sized f32 inputs.
pub const MAX_FRAME_BYTES: usize = 256 << 20;
/// Largest tensor rank accepted on the wire (defends against absurd shape vectors).
pub const MAX_RANK: usize = 8;
/// Frame kind: one serde_json control message.
pub const FRAME_CONTROL: u8 = 1;
/// Frame kind: raw f32 values, little endian.
pub const FRAME_TENSOR: u8 = 2;
/// Size of the frame header: u32 length + u8 kind.
const HEADER_BYTES: usize = 5;
/// Receive buffer: small frames (header, control, small tensors) arrive in one `read`; payloads
/// at least this large are read straight into their destination.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// Model description, serialised as the `model` field of SPEC's probe report.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub format: ModelFormat,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    Onnx,
    Wasm,
}

impl ModelFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFormat::Onnx => "onnx",
            ModelFormat::Wasm => "wasm",
        }
    }
}

/// One input or output: `shape` holds integers for fixed dims and strings for symbols ("N").
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<serde_json::Value>,
    pub dtype: String,
}

/// One call the model made to the outside (a WASI import): `{"import": "path_open",
/// "args": {"path": "/etc/passwd", ...}, "result": 76}`. `result` is the WASI errno returned
/// (`null` when the call does not return, e.g. `proc_exit`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HostEvent {
    pub import: String,
    pub args: serde_json::Value,
    pub result: Option<i32>,
}

/// Why the model refused or failed a request. Serialised lowercase ("shape", "timeout"...).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ModelErrorKind {
    /// The model could not be loaded (corrupt file, over budget, unsupported import).
    Load,
    /// The request's shape does not fit the model.
    Shape,
    /// The model failed while computing.
    Runtime,
    /// The call exceeded its deadline and was interrupted.
    Timeout,
    /// The model hit the memory cap.
    Memory,
    /// The model trapped (WASM trap, `proc_exit`).
    Trap,
}

impl std::fmt::Display for ModelErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelErrorKind::Load => "load",
            ModelErrorKind::Shape => "shape",
            ModelErrorKind::Runtime => "runtime",
            ModelErrorKind::Timeout => "timeout",
            ModelErrorKind::Memory => "memory",
            ModelErrorKind::Trap => "trap",
        })
    }
}

/// Messages from the host. `Output` and nothing else is followed by one tensor frame.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    Hello {
        model: ModelInfo,
        /// Imports called while loading (WASM start functions, shape queries).
        #[serde(default)]
        events: Vec<HostEvent>,
    },
    LoadError {
        message: String,
    },
    Output {
        shape: Vec<usize>,
        events: Vec<HostEvent>,
    },
    Error {
        message: String,
        kind: ModelErrorKind,
        #[serde(default)]
        events: Vec<HostEvent>,
    },
    Bye,
}

/// Messages from the supervisor. `Infer` is followed by one tensor frame.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Infer {
        shape: Vec<usize>,
        /// Per-call deadline the host enforces itself (WASM); the client's socket timeout is
        /// the backstop for models the host cannot interrupt.
        #[serde(default)]
        deadline_ms: Option<u64>,
    },
    Bye,
}

#[derive(Debug, Error)]
pub enum ChannelError {
    /// The model refused or failed: a finding about the model, not a tool error.
    #[error("model {kind} error: {message}")]
    Model {
        kind: ModelErrorKind,
        message: String,
        events: Vec<HostEvent>,
    },
    /// The host closed the channel or died (a crash).
    #[error("the model host closed the channel (it exited or crashed)")]
    Closed,
    /// No answer within the deadline (a hang).
    #[error("the model host did not answer within the deadline")]
    Timeout,
    /// The peer broke the wire format.
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("channel I/O error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for ChannelError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => ChannelError::Closed,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ChannelError::Timeout,
            _ => ChannelError::Io(e),
        }
    }
}

impl From<serde_json::Error> for ChannelError {
    fn from(e: serde_json::Error) -> Self {
        ChannelError::Protocol(format!("bad control message: {e}"))
    }
}

/// Reads and writes frames on one stream, reusing its buffers across calls.
#[derive(Debug)]
pub struct FrameIo<S> {
    stream: S,
    control: Vec<u8>,
    rbuf: Box<[u8]>,
    rpos: usize,
    rlen: usize,
}

impl<S: Read + Write> FrameIo<S> {
    pub fn new(stream: S) -> Self {
        FrameIo {
            stream,
            control: Vec::with_capacity(1024),
            rbuf: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            rpos: 0,
            rlen: 0,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Sends one control message, optionally followed by a tensor frame, in one `writev`.
    pub fn send<M: Serialize>(
        &mut self,
        msg: &M,
        tensor: Option<&[f32]>,
    ) -> Result<(), ChannelError> {
        self.control.clear();
        self.control.extend_from_slice(&[0; HEADER_BYTES]);
        serde_json::to_writer(&mut self.control, msg)?;
        let json_len = self.control.len() - HEADER_BYTES;
        put_header(&mut self.control[..HEADER_BYTES], json_len, FRAME_CONTROL)?;
        match tensor {
            // writev even for one buffer: the host's hot syscalls stay recvfrom + writev.
            None => write_all_vectored(&mut self.stream, &[&self.control])?,
            Some(values) => {
                let payload = f32_bytes(values);
                let mut header = [0u8; HEADER_BYTES];
                put_header(&mut header, payload.len(), FRAME_TENSOR)?;
                #[cfg(target_endian = "little")]
                write_all_vectored(&mut self.stream, &[&self.control, &header, payload])?;
                #[cfg(not(target_endian = "little"))]
                write_all_vectored(&mut self.stream, &[&self.control, &header, &payload])?;
            }
        }
        Ok(())
    }

    /// Receives one control message.
    pub fn recv<M: for<'de> Deserialize<'de>>(&mut self) -> Result<M, ChannelError> {
        let len = self.read_header(FRAME_CONTROL)?;
        let mut control = std::mem::take(&mut self.control);
        control.clear();
        control.resize(len, 0);
        let read = self.read_exact(&mut control);
        self.control = control;
        read?;
        Ok(serde_json::from_slice(&self.control)?)
    }

    /// Receives one tensor frame of exactly `expected` values into `out` (reused buffer).
    pub fn recv_tensor(&mut self, expected: usize, out: &mut Vec<f32>) -> Result<(), ChannelError> {
        out.clear();
        out.resize(expected, 0.0);
        self.recv_tensor_into(out)
    }

    /// Receives one tensor frame of exactly `out.len()` values straight into `out`.
    pub fn recv_tensor_into(&mut self, out: &mut [f32]) -> Result<(), ChannelError> {
        let len = self.read_header(FRAME_TENSOR)?;
        if len % 4 != 0 || len / 4 != out.len() {
            return Err(ChannelError::Protocol(format!(
                "tensor frame of {len} bytes, expected {} f32 values",
                out.len()
            )));
        }
        // SAFETY: `out` is `len` bytes of initialised f32s; f32 has no padding and every bit
        // pattern is a valid f32, so viewing it as bytes and writing any bytes into it is sound;
        // the byte view lives only for this call.
        let bytes = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), len) };
        self.read_exact(bytes)?;
        #[cfg(not(target_endian = "little"))]
        for v in out.iter_mut() {
            *v = f32::from_bits(u32::from_le(v.to_bits()));
        }
        Ok(())
    }

    /// `read_exact` through the receive buffer.
    fn read_exact(&mut self, dst: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < dst.len() {
            if self.rpos == self.rlen {
                let rest = &mut dst[filled..];
                if rest.len() >= READ_BUFFER_BYTES {
                    return self.stream.read_exact(rest);
                }
                self.rpos = 0;
                self.rlen = loop {
                    match self.stream.read(&mut self.rbuf) {
                        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                };
            }
            let n = (self.rlen - self.rpos).min(dst.len() - filled);
            dst[filled..filled + n].copy_from_slice(&self.rbuf[self.rpos..self.rpos + n]);
            self.rpos += n;
            filled += n;
        }
        Ok(())
    }

    fn read_header(&mut self, want: u8) -> Result<usize, ChannelError> {
        let mut header = [0u8; HEADER_BYTES];
        self.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = header[4];
        if kind != want {
            return Err(ChannelError::Protocol(format!(
                "frame kind {kind}, expected {want}"
            )));
        }
        if len > MAX_FRAME_BYTES {
            return Err(ChannelError::Protocol(format!(
                "frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit"
            )));
        }
        Ok(len)
    }
}

fn put_header(header: &mut [u8], len: usize, kind: u8) -> Result<(), ChannelError> {
    if len > MAX_FRAME_BYTES {
        return Err(ChannelError::Protocol(format!(
            "frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit"
        )));
    }
    header[..4].copy_from_slice(&(len as u32).to_le_bytes());
    header[4] = kind;
    Ok(())
}

/// The wire bytes of an f32 slice: a zero-copy view on little-endian machines.
#[cfg(target_endian = "little")]
fn f32_bytes(values: &[f32]) -> &[u8] {
    // SAFETY: f32 is 4 plain bytes with no padding, u8 has alignment 1, and the view covers
    // exactly the slice's memory for the slice's lifetime; on little-endian targets the
    // in-memory bytes are the wire format.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

#[cfg(not(target_endian = "little"))]
fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write_all_vectored<W: Write>(w: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Checks a wire shape: bounded rank, no overflow; returns the element count.
pub fn shape_elements(shape: &[usize]) -> Result<usize, String> {
    if shape.len() > MAX_RANK {
        return Err(format!(
            "rank {} exceeds the maximum of {MAX_RANK}",
            shape.len()
        ));
    }
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| n.saturating_mul(4) <= MAX_FRAME_BYTES)
        .ok_or_else(|| format!("shape {shape:?} exceeds the {MAX_FRAME_BYTES}-byte frame limit"))
}

/// One answer from the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inference {
    pub output: Vec<f32>,
    pub shape: Vec<usize>,
    pub events: Vec<HostEvent>,
}

/// The supervisor's side of the channel.
#[derive(Debug)]
pub struct HostClient {
    io: FrameIo<UnixStream>,
    /// Set after a timeout or desync: the stream may hold half a frame, so nothing more is read.
    broken: bool,
    deadline_ms: u64,
    load_events: Vec<HostEvent>,
}

impl HostClient {
    /// Waits for the host's greeting. A model that fails to load gives
    /// `ChannelError::Model { kind: Load, .. }`; `timeout` bounds every later read and write.
    pub fn connect(
        stream: UnixStream,
        timeout: Duration,
    ) -> Result<(HostClient, ModelInfo), ChannelError> {
        let timeout = timeout.max(Duration::from_millis(1));
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut io = FrameIo::new(stream);
        match io.recv::<HostMessage>()? {
            HostMessage::Hello { model, events } => {
                // The host's own deadline sits below the socket timeout so an interruptible model
                // is reported as a model timeout rather than a dead channel.
                let deadline_ms = (timeout.as_millis() as u64).saturating_mul(8) / 10;
                let client = HostClient {
                    io,
                    broken: false,
                    deadline_ms: deadline_ms.max(1),
                    load_events: events,
                };
                Ok((client, model))
            }
            HostMessage::LoadError { message } => Err(ChannelError::Model {
                kind: ModelErrorKind::Load,
                message,
                events: Vec::new(),
            }),
            other => Err(ChannelError::Protocol(format!(
                "expected hello, got {other:?}"
            ))),
        }
    }

    /// Imports the model called while loading.
    pub fn load_events(&self) -> &[HostEvent] {
        &self.load_events
    }

    /// Changes the socket timeout (connect's `timeout`) that detects a hung host.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), ChannelError> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.io.get_ref().set_read_timeout(Some(timeout))?;
        self.io.get_ref().set_write_timeout(Some(timeout))?;
        Ok(())
    }

    /// The deadline the host enforces on each call it can interrupt (WASM).
    pub fn set_call_deadline(&mut self, deadline: Duration) {
        self.deadline_ms = (deadline.as_millis() as u64).max(1);
    }

    /// Runs one inference on a batch (`shape[0]` is usually the batch size).
    pub fn infer(&mut self, input: &[f32], shape: &[usize]) -> Result<Inference, ChannelError> {
        let mut out = Inference::default();
        self.infer_into(input, shape, &mut out)?;
        Ok(out)
    }

    /// As `infer`, reusing `out`'s buffers (the allocation-light hot path).
    pub fn infer_into(
        &mut self,
        input: &[f32],
        shape: &[usize],
        out: &mut Inference,
    ) -> Result<(), ChannelError> {
        if self.broken {
            return Err(ChannelError::Closed);
        }
        let elements = shape_elements(shape).map_err(ChannelError::Protocol)?;
        if elements != input.len() {
            return Err(ChannelError::Protocol(format!(
                "shape {shape:?} holds {elements} values but the input has {}",
                input.len()
            )));
        }
        let msg = ClientMessage::Infer {
            shape: shape.to_vec(),
            deadline_ms: Some(self.deadline_ms),
        };
        let result = self.exchange(&msg, input, out);
        if matches!(
            result,
            Err(ChannelError::Timeout | ChannelError::Protocol(_) | ChannelError::Io(_))
        ) {
            self.broken = true;
        }
        result
    }

    fn exchange(
        &mut self,
        msg: &ClientMessage,
        input: &[f32],
        out: &mut Inference,
    ) -> Result<(), ChannelError> {
        self.io.send(msg, Some(input))?;
        match self.io.recv::<HostMessage>()? {
            HostMessage::Output { shape, events } => {
                let elements = shape_elements(&shape).map_err(ChannelError::Protocol)?;
                self.io.recv_tensor(elements, &mut out.output)?;
                out.shape = shape;
                out.events = events;
                Ok(())
            }
            HostMessage::Error {
                message,
                kind,
                events,
            } => Err(ChannelError::Model {
                kind,
                message,
                events,
            }),
            other => Err(ChannelError::Protocol(format!(
                "expected output, got {other:?}"
            ))),
        }
    }

    /// Asks the host to exit and waits for its goodbye.
    pub fn close(mut self) -> Result<(), ChannelError> {
        if self.broken {
            return Err(ChannelError::Closed);
        }
        self.io.send(&ClientMessage::Bye, None)?;
        match self.io.recv::<HostMessage>()? {
            HostMessage::Bye => Ok(()),
            other => Err(ChannelError::Protocol(format!(
                "expected bye, got {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_control_and_tensor() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut tx = FrameIo::new(a);
        let mut rx = FrameIo::new(b);
        let msg = ClientMessage::Infer {
            shape: vec![2, 3],
            deadline_ms: Some(5),
        };
        let values = [
            1.0f32,
            -2.5,
            f32::NAN,
            f32::INFINITY,
            0.0,
            f32::MIN_POSITIVE / 2.0,
        ];
        tx.send(&msg, Some(&values)).unwrap();
        let got: ClientMessage = rx.recv().unwrap();
        assert_eq!(got, msg);
        let mut out = Vec::new();
        rx.recv_tensor(6, &mut out).unwrap();
        let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, want);
    }

    #[test]
    fn oversized_length_prefix_is_refused_without_allocating() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut header = (u32::MAX).to_le_bytes().to_vec();
        header.push(FRAME_CONTROL);
        a.write_all(&header).unwrap();
        let mut rx = FrameIo::new(b);
        let err = rx.recv::<HostMessage>().unwrap_err();
        assert!(
            matches!(err, ChannelError::Protocol(ref m) if m.contains("exceeds")),
            "{err}"
        );
    }

    #[test]
    fn closed_peer_and_silent_peer_are_told_apart() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        let err = HostClient::connect(b, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, ChannelError::Closed), "{err}");

        let (_a, b) = UnixStream::pair().unwrap();
        let err = HostClient::connect(b, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, ChannelError::Timeout), "{err}");
    }

    #[test]
    fn shapes_that_overflow_are_refused() {
        assert!(shape_elements(&[usize::MAX, 2]).is_err());
        assert!(shape_elements(&[1; MAX_RANK + 1]).is_err());
        assert_eq!(shape_elements(&[3, 4]), Ok(12));
        assert_eq!(shape_elements(&[]), Ok(1));
    }

    #[test]
    fn model_info_serialises_as_the_report_field() {
        let info = ModelInfo {
            format: ModelFormat::Onnx,
            inputs: vec![TensorInfo {
                name: "x".into(),
                shape: vec!["N".into(), 64.into()],
                dtype: "f32".into(),
            }],
            outputs: vec![],
        };
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["format"], "onnx");
        assert_eq!(json["inputs"][0]["shape"], serde_json::json!(["N", 64]));
    }
}
