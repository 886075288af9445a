//! The supervisor <-> model host channel: length-prefixed binary frames over a connected unix
//! stream socket. A frame is `u32 LE length | u8 kind | payload`; control frames carry one JSON
//! message, tensor frames carry raw little-endian f32 values. A request's tensor may instead sit
//! in a slot of the shared region (shared.rs): the control message then names its offset and no
//! tensor frame follows. Both sides live here so the wire format has one definition; this file
//! depends on nothing else in the crate but shared.rs (tests and examples include both).

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::shared::SharedInputs;

/// Largest frame either side accepts. Defends against a corrupt or hostile length prefix making
/// the reader allocate gigabytes; 256 MiB holds a batch of 20,000 ImageNet-sized f32 inputs.
pub const MAX_FRAME_BYTES: usize = 256 << 20;
/// The largest control (JSON) frame: parsed into values many times its size, it gets a cap of
/// its own far below a tensor's. An honest host's largest, an answer with its capped events, is
/// well under it.
pub const MAX_CONTROL_BYTES: usize = 16 << 20;
/// The longest message from the host kept (the rest is cut): it reaches findings and reports.
pub const MAX_HOST_MESSAGE: usize = 4096;
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
        /// Byte offset of the tensor in the shared region; absent: a tensor frame follows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shared: Option<u64>,
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
        let mut read = Ok(());
        // Grown with what arrives: a length prefix that lies costs at most a step.
        while control.len() < len && read.is_ok() {
            let start = control.len();
            control.resize(start + grow_step(start, len), 0);
            read = self.read_exact(&mut control[start..]);
        }
        self.control = control;
        read?;
        Ok(serde_json::from_slice(&self.control)?)
    }

    /// Receives one tensor frame of exactly `expected` values into `out` (reused buffer), grown
    /// with what arrives, so a peer that claims a large tensor and sends little costs little.
    pub fn recv_tensor(&mut self, expected: usize, out: &mut Vec<f32>) -> Result<(), ChannelError> {
        self.tensor_header(expected)?;
        out.clear();
        while out.len() < expected {
            let start = out.len();
            let step = grow_step(start * 4, expected * 4) / 4;
            out.resize(start + step.max(1), 0.0);
            self.read_f32s(&mut out[start..])?;
        }
        Ok(())
    }

    /// Receives one tensor frame of exactly `out.len()` values straight into `out`.
    pub fn recv_tensor_into(&mut self, out: &mut [f32]) -> Result<(), ChannelError> {
        self.tensor_header(out.len())?;
        self.read_f32s(out)?;
        Ok(())
    }

    /// Reads a tensor frame's header and checks it holds exactly `expected` f32 values.
    fn tensor_header(&mut self, expected: usize) -> Result<(), ChannelError> {
        let len = self.read_header(FRAME_TENSOR)?;
        if len % 4 != 0 || len / 4 != expected {
            return Err(ChannelError::Protocol(format!(
                "tensor frame of {len} bytes, expected {expected} f32 values"
            )));
        }
        Ok(())
    }

    /// Fills `out` with little-endian f32s from the stream.
    fn read_f32s(&mut self, out: &mut [f32]) -> io::Result<()> {
        let len = std::mem::size_of_val(out);
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
        let max = if want == FRAME_CONTROL {
            MAX_CONTROL_BYTES
        } else {
            MAX_FRAME_BYTES
        };
        if len > max {
            return Err(ChannelError::Protocol(format!(
                "frame of {len} bytes exceeds the {max}-byte limit"
            )));
        }
        Ok(len)
    }
}

/// `s` cut to at most `max` bytes (at a character boundary), saying so.
pub fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let total = s.len();
        s.truncate(end);
        s.push_str(&format!("... ({total} bytes)"));
    }
    s
}

/// How far a receive buffer holding `have` of `want` bytes grows next: doubling, at least 1 MiB
/// (one step for every frame of the hot path), never past `want`.
fn grow_step(have: usize, want: usize) -> usize {
    (want - have).min(have.max(1 << 20))
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

/// The socket's send buffer in bytes (what the kernel holds before a write waits); the Linux
/// default when it cannot be read.
fn send_buffer_bytes(stream: &UnixStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut bytes: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt with a valid fd, an int-sized buffer and its length.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut bytes as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 && bytes > 0 {
        bytes as usize
    } else {
        212_992
    }
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
    /// The shared region for request tensors, when the host was given one.
    shared: Option<SharedInputs>,
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
                    shared: None,
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

    /// Sends request tensors through `shared` (the host must have been given its read-only
    /// descriptor).
    pub fn use_shared(&mut self, shared: SharedInputs) {
        self.shared = Some(shared);
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
        let msg = self.infer_message(input, shape, 0)?;
        let result = self.exchange(&msg, input, out);
        self.note_desync(&result);
        result
    }

    /// After a timeout or a broken frame the stream may hold half a frame: nothing more is read.
    /// (Closed needs no mark: the host is gone and a later call says so again.)
    fn note_desync(&mut self, result: &Result<(), ChannelError>) {
        if let Err(ChannelError::Timeout | ChannelError::Protocol(_) | ChannelError::Io(_)) = result
        {
            self.broken = true;
        }
    }

    /// Runs `batches` in order with up to two requests in flight: the host starts on the next
    /// batch the moment it answers one, while this side takes the answer and sends the batch
    /// after, so the copy of each batch into the channel overlaps the model's work instead of
    /// adding to it. `on_output(i, inference)` gets each answer in order; `on_output` returning
    /// false stops sending (answers already in flight are still read, keeping the stream in step).
    /// The first failure is returned after the in-flight answers are drained (a model error) or at
    /// once (a dead or hung host: the client is then broken).
    ///
    /// Two in flight only when two request frames fit the socket's send buffer: a write then never
    /// waits on the host, which could itself be waiting to write a large answer. Otherwise one at
    /// a time, as `infer_into`.
    pub fn infer_pipelined<'a, I, F>(
        &mut self,
        batches: I,
        mut on_output: F,
    ) -> Result<(), ChannelError>
    where
        I: IntoIterator<Item = (&'a [f32], &'a [usize])>,
        F: FnMut(usize, &mut Inference) -> bool,
    {
        if self.broken {
            return Err(ChannelError::Closed);
        }
        let send_buffer = send_buffer_bytes(self.io.get_ref());
        let mut batches = batches.into_iter();
        let mut queued = batches.next();
        let mut out = Inference::default();
        let (mut in_flight, mut answered, mut sent) = (0usize, 0usize, 0usize);
        let mut sending = true;
        let mut failure: Option<ChannelError> = None;
        let mut write_error: Option<ChannelError> = None;
        let result = loop {
            while sending {
                let Some((input, shape)) = queued else {
                    sending = false;
                    break;
                };
                let frame = input.len() * 4 + 256;
                let by_socket = self.shared.is_none() || frame > super::shared::SLOT_BYTES;
                if in_flight >= 2 || (in_flight == 1 && by_socket && 2 * frame > send_buffer) {
                    break;
                }
                // Slots alternate: the one written now was last used two requests ago, whose
                // answer has arrived.
                let msg = match self.infer_message(input, shape, sent % 2) {
                    Ok(msg) => msg,
                    Err(e) => {
                        // Refused before anything was written: the stream is still in step.
                        failure = Some(e);
                        sending = false;
                        break;
                    }
                };
                if let Err(e) = self.send_request(&msg, input) {
                    // The host is gone or stuck.
                    write_error = Some(e);
                    break;
                }
                in_flight += 1;
                sent += 1;
                queued = batches.next();
            }
            if let Some(e) = write_error.take() {
                break Err(e);
            }
            if in_flight == 0 {
                break Ok(());
            }
            match self.recv_output(&mut out) {
                Ok(()) => {
                    if failure.is_none() && !on_output(answered, &mut out) {
                        sending = false;
                    }
                }
                Err(e @ ChannelError::Model { .. }) => {
                    failure.get_or_insert(e);
                    sending = false;
                }
                Err(e) => break Err(e),
            }
            answered += 1;
            in_flight -= 1;
        };
        self.note_desync(&result);
        result?;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The request for `input`, placed in shared slot `slot` when there is a region and it fits
    /// (the tensor frame is then left out by `send_request`).
    fn infer_message(
        &mut self,
        input: &[f32],
        shape: &[usize],
        slot: usize,
    ) -> Result<ClientMessage, ChannelError> {
        let elements = shape_elements(shape).map_err(ChannelError::Protocol)?;
        if elements != input.len() {
            return Err(ChannelError::Protocol(format!(
                "shape {shape:?} holds {elements} values but the input has {}",
                input.len()
            )));
        }
        Ok(ClientMessage::Infer {
            shape: shape.to_vec(),
            deadline_ms: Some(self.deadline_ms),
            shared: self.shared.as_mut().and_then(|s| s.put(slot, input)),
        })
    }

    /// Sends a request, with its tensor frame unless the tensor is in the shared region.
    fn send_request(&mut self, msg: &ClientMessage, input: &[f32]) -> Result<(), ChannelError> {
        match msg {
            ClientMessage::Infer {
                shared: Some(_), ..
            } => self.io.send(msg, None),
            _ => self.io.send(msg, Some(input)),
        }
    }

    fn exchange(
        &mut self,
        msg: &ClientMessage,
        input: &[f32],
        out: &mut Inference,
    ) -> Result<(), ChannelError> {
        self.send_request(msg, input)?;
        self.recv_output(out)
    }

    /// Reads one answer: an output (into `out`) or the model's error.
    fn recv_output(&mut self, out: &mut Inference) -> Result<(), ChannelError> {
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
                message: cut(message, MAX_HOST_MESSAGE),
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
            shared: None,
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

    /// A stand-in host: answers each request with the sum of its values, or an error for
    /// requests whose first value is negative; reads tensors from the socket or `view`.
    fn fake_host(
        stream: UnixStream,
        view: Option<super::super::shared::SharedView>,
    ) -> std::thread::JoinHandle<usize> {
        std::thread::spawn(move || {
            let mut io = FrameIo::new(stream);
            let mut served = 0;
            let hello = HostMessage::Hello {
                model: ModelInfo {
                    format: ModelFormat::Onnx,
                    inputs: vec![],
                    outputs: vec![],
                },
                events: vec![],
            };
            io.send(&hello, None).unwrap();
            let mut values = Vec::new();
            loop {
                let Ok(msg) = io.recv::<ClientMessage>() else {
                    return served;
                };
                let ClientMessage::Infer { shape, shared, .. } = msg else {
                    io.send(&HostMessage::Bye, None).unwrap();
                    return served;
                };
                let n = shape_elements(&shape).unwrap();
                match (shared, &view) {
                    (Some(off), Some(v)) => {
                        values.clear();
                        values.extend_from_slice(v.slice(off, n).unwrap());
                    }
                    _ => io.recv_tensor(n, &mut values).unwrap(),
                }
                served += 1;
                if values[0] < 0.0 {
                    let err = HostMessage::Error {
                        message: "negative".into(),
                        kind: ModelErrorKind::Runtime,
                        events: vec![],
                    };
                    io.send(&err, None).unwrap();
                } else {
                    let out = HostMessage::Output {
                        shape: vec![1],
                        events: vec![],
                    };
                    io.send(&out, Some(&[values.iter().sum::<f32>()])).unwrap();
                }
            }
        })
    }

    fn pipelined_batches_answer_in_order_and_stay_in_step(shared: bool) {
        let (a, b) = UnixStream::pair().unwrap();
        let region = shared.then(|| super::super::shared::SharedInputs::create().unwrap());
        let view = region
            .as_ref()
            .map(|r| super::super::shared::SharedView::open(r.read_only_fd().unwrap()).unwrap());
        let host = fake_host(b, view);
        let (mut client, _) = HostClient::connect(a, Duration::from_secs(10)).unwrap();
        if let Some(r) = region {
            client.use_shared(r);
        }
        let data: Vec<Vec<f32>> = (0..7).map(|i| vec![i as f32, 1.0, 2.0]).collect();
        let shape = [3usize];
        let mut sums = Vec::new();
        client
            .infer_pipelined(data.iter().map(|d| (&d[..], &shape[..])), |i, inf| {
                sums.push((i, inf.output[0]));
                true
            })
            .unwrap();
        let want: Vec<(usize, f32)> = (0..7).map(|i| (i, i as f32 + 3.0)).collect();
        assert_eq!(sums, want);

        // A model error in the middle: later batches are not sent, the one in flight is drained,
        // the error comes back, and the client still works.
        let mut bad = data.clone();
        bad[2][0] = -1.0;
        let mut seen = Vec::new();
        let err = client
            .infer_pipelined(bad.iter().map(|d| (&d[..], &shape[..])), |i, _| {
                seen.push(i);
                true
            })
            .unwrap_err();
        assert!(matches!(err, ChannelError::Model { .. }), "{err}");
        assert_eq!(seen, vec![0, 1]);
        let one = client.infer(&data[4], &shape).unwrap();
        assert_eq!(one.output, vec![7.0]);

        // Stopping early: answers in flight are read, nothing more is sent.
        let mut got = 0;
        client
            .infer_pipelined(data.iter().map(|d| (&d[..], &shape[..])), |_, _| {
                got += 1;
                false
            })
            .unwrap();
        assert!(got >= 1);
        assert_eq!(client.infer(&data[5], &shape).unwrap().output, vec![8.0]);
        client.close().unwrap();
        // 7 + (3 or 4: batch 3 may be in flight when batch 2 fails) + 1 + (1 or 2) + 1.
        let served = host.join().unwrap();
        assert!((13..=15).contains(&served), "{served}");
    }

    #[test]
    fn pipelined_over_the_socket() {
        pipelined_batches_answer_in_order_and_stay_in_step(false);
    }

    #[test]
    fn pipelined_through_shared_memory() {
        pipelined_batches_answer_in_order_and_stay_in_step(true);
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
    fn a_lying_length_prefix_costs_a_step_not_the_claim() {
        // A control frame and a tensor frame that claim 12 and 200 MB (each under its cap) and
        // bring 10 bytes.
        for kind in [FRAME_CONTROL, FRAME_TENSOR] {
            let (mut a, b) = UnixStream::pair().unwrap();
            let claim: u32 = if kind == FRAME_CONTROL {
                12 << 20
            } else {
                200 << 20
            };
            let mut frame = claim.to_le_bytes().to_vec();
            frame.push(kind);
            frame.extend_from_slice(b"0123456789");
            a.write_all(&frame).unwrap();
            drop(a);
            let mut rx = FrameIo::new(b);
            let mut out = Vec::new();
            let err = if kind == FRAME_CONTROL {
                rx.recv::<HostMessage>().unwrap_err()
            } else {
                rx.recv_tensor(50 << 20, &mut out).unwrap_err()
            };
            assert!(matches!(err, ChannelError::Closed), "{err}");
            assert!(
                rx.control.capacity() <= 2 << 20,
                "{}",
                rx.control.capacity()
            );
            assert!(out.capacity() <= 1 << 20, "{}", out.capacity());
        }
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
