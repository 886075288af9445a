//! WASM models on wasmtime: compiled from `.wasm`/`.wat` text only, run under an epoch deadline
//! and a memory cap, with a WASI preview1 written here that grants nothing (no preopens, no env,
//! no args, no sockets) and records every call the model makes as a `HostEvent`.
//! The model ABI is documented in docs/wasm-abi.md.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value as Json, json};
use wasmtime::{
    Caller, Config, Engine, Extern, ExternType, Linker, Memory, Module, ResourceLimiter, Store,
    Trap, TypedFunc, Val, ValType,
};

use super::{ModelError, tensor_shape_json};
use crate::host::channel::{
    HostEvent, MAX_RANK, ModelErrorKind, ModelFormat, ModelInfo, TensorInfo,
};

/// Linear memory cap per model. Defends against `memory.grow` without end exhausting the host.
pub const WASM_MEMORY_CAP_BYTES: usize = 256 << 20;
/// Table elements cap (tables cost a pointer per element): defends against `table.grow` bombs.
/// The largest argument record of one event (its JSON), as the supervisor keeps.
const MAX_EVENT_ARGS_BYTES: usize = crate::probe::session::MAX_EVENT_ARGS;
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Wasm stack per call; deep recursion traps instead of overflowing the host's stack.
const MAX_WASM_STACK_BYTES: usize = 1 << 20;
/// Epoch ticker period: the granularity of the per-call deadline.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Default per-call deadline when the client sends none.
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(5);
/// Longest per-call deadline a client may ask for (defends against a deadline that never fires).
const MAX_CALL_DEADLINE: Duration = Duration::from_secs(600);
/// Deadline for instantiation (start function) and the ABI queries.
const LOAD_DEADLINE: Duration = Duration::from_secs(10);
/// Largest `mv_input_len`/`mv_output_len` accepted (values per sample).
const MAX_SAMPLE_VALUES: i32 = 1 << 24;
/// Events kept per call; a model calling the clock in a loop must not blow up the reply.
const MAX_EVENTS_PER_CALL: usize = 1024;
/// Bytes of a path or written text decoded into an event.
const MAX_DECODED_BYTES: usize = 4096;
/// Total bytes of fd_write output captured over the model's life.
const MAX_CAPTURED_OUTPUT: usize = 64 << 10;
/// Iovecs decoded per fd_write call.
const MAX_IOVECS: usize = 1024;
/// Bytes one random_get may ask for.
const MAX_RANDOM_BYTES: usize = 1 << 20;
/// Seed of the generator behind random_get, so runs are reproducible.
pub const RANDOM_SEED: u64 = 0x6d6f_6465_6c76_6574;

/// The WASI module name; every other import module is refused at load.
const WASI_MODULE: &str = "wasi_snapshot_preview1";
const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EINVAL: i32 = 28;
const ENOSYS: i32 = 52;
const ENOTCAPABLE: i32 = 76;

/// `proc_exit` ends the call with this error, recorded as a trap.
#[derive(Debug)]
struct ProcExit(i32);

impl std::fmt::Display for ProcExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the model called proc_exit({})", self.0)
    }
}

impl std::error::Error for ProcExit {}

struct Limiter {
    /// Set when the model asked for more memory than the cap: (bytes asked).
    denied: Option<usize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > WASM_MEMORY_CAP_BYTES {
            self.denied = Some(desired);
            return Err(wasmtime::Error::msg(format!(
                "memory growth to {desired} bytes exceeds the cap of {WASM_MEMORY_CAP_BYTES} bytes"
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

struct HostState {
    limiter: Limiter,
    events: Vec<HostEvent>,
    dropped_events: usize,
    captured_output: usize,
    rng: ChaCha8Rng,
    started: Instant,
}

impl HostState {
    fn record(&mut self, import: &str, mut args: Json, result: Option<i32>) {
        if self.events.len() < MAX_EVENTS_PER_CALL {
            // As much as the supervisor keeps (crate::probe::session): an answer's events must
            // stay far under the control frame's cap whatever the model passes.
            let len = args.to_string().len();
            if len > MAX_EVENT_ARGS_BYTES {
                args = serde_json::json!({ "not_kept_bytes": len });
            }
            self.events.push(HostEvent {
                import: import.to_string(),
                args,
                result,
            });
        } else {
            self.dropped_events += 1;
        }
    }

    fn take_events(&mut self) -> Vec<HostEvent> {
        let mut events = std::mem::take(&mut self.events);
        if self.dropped_events > 0 {
            events.push(HostEvent {
                import: "(dropped)".into(),
                args: json!({"count": self.dropped_events}),
                result: None,
            });
            self.dropped_events = 0;
        }
        events
    }
}

pub struct WasmModel {
    info: ModelInfo,
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    infer: TypedFunc<(i32, i32, i32), i32>,
    input_len: usize,
    output_len: usize,
    sample_shape: Vec<usize>,
    /// (offset, capacity in bytes) of the buffers obtained from `mv_alloc`.
    in_buf: (usize, usize),
    out_buf: (usize, usize),
    load_events: Vec<HostEvent>,
}

/// The engine and its epoch ticker, shared by every model in the process.
fn engine() -> Result<&'static Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config
                .epoch_interruption(true)
                .wasm_threads(false)
                // No GC proposals: the crate is built without a collector, and models need none.
                .wasm_gc(false)
                .wasm_function_references(false)
                .wasm_exceptions(false)
                .gc_support(false)
                .max_wasm_stack(MAX_WASM_STACK_BYTES)
                // Reserve exactly the cap (not wasmtime's 4 GiB default, which an address-space
                // rlimit would refuse): memory never moves on growth, bounds checks are explicit.
                .memory_reservation(WASM_MEMORY_CAP_BYTES as u64)
                .memory_guard_size(0)
                .memory_reservation_for_growth(0)
                // No memfd-backed copy-on-write images: fewer syscalls for the seccomp tier.
                .memory_init_cow(false);
            let engine =
                Engine::new(&config).map_err(|e| format!("cannot configure wasmtime: {e:#}"))?;
            let ticker = engine.clone();
            std::thread::Builder::new()
                .name("epoch-ticker".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(EPOCH_TICK);
                        ticker.increment_epoch();
                    }
                })
                .map_err(|e| format!("cannot start the epoch ticker thread: {e}"))?;
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn deadline_ticks(deadline: Duration) -> u64 {
    let deadline = deadline.min(MAX_CALL_DEADLINE);
    (deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

/// Compiles and instantiates a model from `.wasm` bytes or `.wat` text.
pub fn load(bytes: &[u8]) -> Result<WasmModel, String> {
    if bytes.starts_with(b"\x7fELF") {
        return Err("this is a precompiled native artefact, not WebAssembly: refused (only .wasm/.wat are compiled)".into());
    }
    let engine = engine()?;
    let module =
        Module::new(engine, bytes).map_err(|e| format!("not a valid WebAssembly module: {e:#}"))?;
    let mut linker: Linker<HostState> = Linker::new(engine);
    for import in module.imports() {
        let (module_name, name) = (import.module(), import.name());
        let ExternType::Func(ty) = import.ty() else {
            return Err(format!(
                "import {module_name}::{name} is not a function; the host provides only WASI functions"
            ));
        };
        if module_name != WASI_MODULE {
            return Err(format!(
                "import {module_name}::{name} is not provided: the host only provides {WASI_MODULE} functions"
            ));
        }
        let result_types: Vec<ValType> = ty.results().collect();
        let owned = name.to_string();
        linker
            .func_new(WASI_MODULE, name, ty, move |caller, params, results| {
                wasi_call(&owned, caller, params, results, &result_types)
            })
            .map_err(|e| format!("cannot define {WASI_MODULE}::{name}: {e:#}"))?;
    }

    let state = HostState {
        limiter: Limiter { denied: None },
        events: Vec::new(),
        dropped_events: 0,
        captured_output: 0,
        rng: ChaCha8Rng::seed_from_u64(RANDOM_SEED),
        started: Instant::now(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_trap();
    store.set_epoch_deadline(deadline_ticks(LOAD_DEADLINE));
    let instance = linker
        .instantiate(&mut store, &module)
        .map_err(|e| format!("instantiation failed: {}", classify(&mut store, e).message))?;

    let memory = instance
        .get_memory(&mut store, "memory")
        .ok_or("the module does not export `memory`")?;
    let typed = |store: &mut Store<HostState>, name: &str| {
        instance
            .get_export(&mut *store, name)
            .and_then(Extern::into_func)
            .ok_or(format!("the module does not export `{name}`"))
    };
    let alloc = typed(&mut store, "mv_alloc")?
        .typed::<i32, i32>(&store)
        .map_err(|e| format!("`mv_alloc` must be (i32) -> i32: {e:#}"))?;
    let infer = typed(&mut store, "mv_infer")?
        .typed::<(i32, i32, i32), i32>(&store)
        .map_err(|e| format!("`mv_infer` must be (i32, i32, i32) -> i32: {e:#}"))?;
    let input_len_fn = typed(&mut store, "mv_input_len")?;
    let input_len = abi_len(&mut store, input_len_fn, "mv_input_len")?;
    let output_len_fn = typed(&mut store, "mv_output_len")?;
    let output_len = abi_len(&mut store, output_len_fn, "mv_output_len")?;
    let sample_shape = match instance
        .get_export(&mut store, "mv_input_shape")
        .and_then(Extern::into_func)
    {
        Some(f) => input_shape(&mut store, f, input_len)?,
        None => vec![input_len],
    };

    let mut input_shape: Vec<usize> = vec![0];
    input_shape.extend(&sample_shape);
    let symbol = |dims: &[usize]| {
        let ints: Vec<Option<i64>> = std::iter::once(None)
            .chain(dims.iter().map(|&d| Some(d as i64)))
            .collect();
        let names: Vec<String> = std::iter::once("N".to_string())
            .chain(dims.iter().map(|d| d.to_string()))
            .collect();
        tensor_shape_json(&ints, &names)
    };
    let info = ModelInfo {
        format: ModelFormat::Wasm,
        inputs: vec![TensorInfo {
            name: "input".into(),
            shape: symbol(&sample_shape),
            dtype: "f32".into(),
        }],
        outputs: vec![TensorInfo {
            name: "output".into(),
            shape: symbol(&[output_len]),
            dtype: "f32".into(),
        }],
    };
    let load_events = store.data_mut().take_events();
    Ok(WasmModel {
        info,
        store,
        memory,
        alloc,
        infer,
        input_len,
        output_len,
        sample_shape,
        in_buf: (0, 0),
        out_buf: (0, 0),
        load_events,
    })
}

fn abi_len(store: &mut Store<HostState>, f: wasmtime::Func, name: &str) -> Result<usize, String> {
    let f = f
        .typed::<(), i32>(&*store)
        .map_err(|e| format!("`{name}` must be () -> i32: {e:#}"))?;
    let n = f
        .call(&mut *store, ())
        .map_err(|e| format!("`{name}` failed: {}", classify(store, e).message))?;
    if !(1..=MAX_SAMPLE_VALUES).contains(&n) {
        return Err(format!(
            "`{name}` returned {n}; expected 1..={MAX_SAMPLE_VALUES}"
        ));
    }
    Ok(n as usize)
}

fn input_shape(
    store: &mut Store<HostState>,
    f: wasmtime::Func,
    input_len: usize,
) -> Result<Vec<usize>, String> {
    let f = f
        .typed::<i32, i32>(&*store)
        .map_err(|e| format!("`mv_input_shape` must be (i32) -> i32: {e:#}"))?;
    let mut dims = Vec::new();
    for i in 0..MAX_RANK as i32 {
        let d = f
            .call(&mut *store, i)
            .map_err(|e| format!("`mv_input_shape` failed: {}", classify(store, e).message))?;
        if d <= 0 {
            break;
        }
        dims.push(d as usize);
    }
    let product: usize = dims.iter().product();
    if dims.is_empty() || product != input_len {
        return Err(format!(
            "`mv_input_shape` gives {dims:?} ({product} values) but `mv_input_len` is {input_len}"
        ));
    }
    Ok(dims)
}

impl WasmModel {
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Imports called while instantiating and answering the ABI queries.
    pub fn take_load_events(&mut self) -> Vec<HostEvent> {
        std::mem::take(&mut self.load_events)
    }

    /// Runs `mv_infer` on one batch of shape `[n, sample...]` (or `[n, input_len]`).
    #[allow(clippy::too_many_arguments)]
    pub fn infer(
        &mut self,
        input: &[f32],
        shape: &[usize],
        deadline: Duration,
        out: &mut Vec<f32>,
        out_shape: &mut Vec<usize>,
        events: &mut Vec<HostEvent>,
    ) -> Result<(), ModelError> {
        let result = self.run(input, shape, deadline, out, out_shape);
        *events = self.store.data_mut().take_events();
        result
    }

    fn run(
        &mut self,
        input: &[f32],
        shape: &[usize],
        deadline: Duration,
        out: &mut Vec<f32>,
        out_shape: &mut Vec<usize>,
    ) -> Result<(), ModelError> {
        let fits = shape.len() >= 2
            && (shape[1..] == self.sample_shape[..] || shape[1..] == [self.input_len][..]);
        if !fits {
            let mut want = vec!["N".to_string()];
            want.extend(self.sample_shape.iter().map(|d| d.to_string()));
            return Err(ModelError::new(
                ModelErrorKind::Shape,
                format!(
                    "input shape {shape:?} does not fit the model's declared [{}]",
                    want.join(", ")
                ),
            ));
        }
        let n = shape[0];
        let n_i32 = i32::try_from(n).map_err(|_| {
            ModelError::new(ModelErrorKind::Shape, format!("batch {n} is too large"))
        })?;
        let in_bytes = n * self.input_len * 4;
        let out_bytes = n
            .checked_mul(self.output_len * 4)
            .filter(|&b| b <= WASM_MEMORY_CAP_BYTES)
            .ok_or_else(|| {
                ModelError::new(
                    ModelErrorKind::Memory,
                    format!("the output of a batch of {n} exceeds the memory cap"),
                )
            })?;
        if in_bytes > WASM_MEMORY_CAP_BYTES {
            return Err(ModelError::new(
                ModelErrorKind::Memory,
                format!("a batch of {n} exceeds the memory cap"),
            ));
        }
        self.in_buf = self.reserve(self.in_buf, in_bytes, deadline)?;
        self.out_buf = self.reserve(self.out_buf, out_bytes, deadline)?;

        let (in_ptr, out_ptr) = (self.in_buf.0, self.out_buf.0);
        {
            let data = self.memory.data_mut(&mut self.store);
            let dst = data.get_mut(in_ptr..in_ptr + in_bytes).ok_or_else(|| {
                ModelError::new(
                    ModelErrorKind::Runtime,
                    "the input buffer is outside linear memory",
                )
            })?;
            for (chunk, v) in dst.chunks_exact_mut(4).zip(input) {
                chunk.copy_from_slice(&v.to_le_bytes());
            }
        }
        self.store.set_epoch_deadline(deadline_ticks(deadline));
        let started = Instant::now();
        let status = self
            .infer
            .call(&mut self.store, (in_ptr as i32, n_i32, out_ptr as i32))
            .map_err(|e| {
                let mut err = classify(&mut self.store, e);
                if err.kind == ModelErrorKind::Timeout {
                    err.message = format!(
                        "{} (deadline {} ms, ran {} ms)",
                        err.message,
                        deadline.as_millis(),
                        started.elapsed().as_millis()
                    );
                }
                err
            })?;
        if status != 0 {
            return Err(ModelError::new(
                ModelErrorKind::Runtime,
                format!("mv_infer returned status {status}"),
            ));
        }
        let data = self.memory.data(&self.store);
        let src = data.get(out_ptr..out_ptr + out_bytes).ok_or_else(|| {
            ModelError::new(
                ModelErrorKind::Runtime,
                "the output buffer is outside linear memory",
            )
        })?;
        out.clear();
        out.extend(
            src.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        out_shape.clear();
        out_shape.extend_from_slice(&[n, self.output_len]);
        Ok(())
    }

    /// Returns a buffer of at least `bytes`, calling `mv_alloc` only when the old one is too small.
    fn reserve(
        &mut self,
        current: (usize, usize),
        bytes: usize,
        deadline: Duration,
    ) -> Result<(usize, usize), ModelError> {
        if current.1 >= bytes && current.1 > 0 {
            return Ok(current);
        }
        let want = bytes.max(4);
        let asked = i32::try_from(want)
            .map_err(|_| ModelError::new(ModelErrorKind::Memory, "buffer too large"))?;
        // mv_alloc is model code too: it gets the call's deadline.
        self.store.set_epoch_deadline(deadline_ticks(deadline));
        let ptr = self
            .alloc
            .call(&mut self.store, asked)
            .map_err(|e| classify(&mut self.store, e))?;
        let size = self.memory.data_size(&self.store);
        let start = usize::try_from(ptr)
            .ok()
            .filter(|&p| p > 0 && p.saturating_add(want) <= size)
            .ok_or_else(|| {
                ModelError::new(
                    ModelErrorKind::Runtime,
                    format!(
                        "mv_alloc({want}) returned {ptr}, outside the {size}-byte linear memory"
                    ),
                )
            })?;
        Ok((start, want))
    }
}

/// Maps a wasmtime error to the reply's kind: memory cap, deadline, trap or runtime failure.
fn classify(store: &mut Store<HostState>, e: wasmtime::Error) -> ModelError {
    if let Some(asked) = store.data_mut().limiter.denied.take() {
        return ModelError::new(
            ModelErrorKind::Memory,
            format!(
                "stopped at the memory cap: the model asked for {asked} bytes, the cap is {WASM_MEMORY_CAP_BYTES}"
            ),
        );
    }
    if let Some(exit) = e.downcast_ref::<ProcExit>() {
        return ModelError::new(ModelErrorKind::Trap, exit.to_string());
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => ModelError::new(
            ModelErrorKind::Timeout,
            "interrupted at the per-call deadline",
        ),
        Some(trap) => ModelError::new(ModelErrorKind::Trap, trap.to_string()),
        None => ModelError::new(ModelErrorKind::Runtime, format!("{e:#}")),
    }
}

fn arg_i32(params: &[Val], i: usize) -> Option<i32> {
    match params.get(i) {
        Some(Val::I32(v)) => Some(*v),
        _ => None,
    }
}

fn arg_i64(params: &[Val], i: usize) -> Option<i64> {
    match params.get(i) {
        Some(Val::I64(v)) => Some(*v),
        _ => None,
    }
}

fn memory_of(caller: &mut Caller<'_, HostState>) -> Option<Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

/// Reads at most `MAX_DECODED_BYTES` of a guest buffer as (lossy) UTF-8.
fn read_string(
    caller: &mut Caller<'_, HostState>,
    ptr: Option<i32>,
    len: Option<i32>,
) -> Option<String> {
    let memory = memory_of(caller)?;
    let (ptr, len) = (usize::try_from(ptr?).ok()?, usize::try_from(len?).ok()?);
    let len = len.min(MAX_DECODED_BYTES);
    let bytes = memory.data(&*caller).get(ptr..ptr.checked_add(len)?)?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}

fn write_bytes(caller: &mut Caller<'_, HostState>, ptr: Option<i32>, bytes: &[u8]) -> bool {
    let (Some(memory), Some(ptr)) = (memory_of(caller), ptr.and_then(|p| usize::try_from(p).ok()))
    else {
        return false;
    };
    match memory
        .data_mut(&mut *caller)
        .get_mut(ptr..ptr.saturating_add(bytes.len()))
    {
        Some(dst) if dst.len() == bytes.len() => {
            dst.copy_from_slice(bytes);
            true
        }
        _ => false,
    }
}

/// One WASI preview1 call: decode what is known, grant nothing, record everything.
fn wasi_call(
    name: &str,
    mut caller: Caller<'_, HostState>,
    params: &[Val],
    results: &mut [Val],
    result_types: &[ValType],
) -> wasmtime::Result<()> {
    let p = |i| arg_i32(params, i);
    let (args, errno): (Json, i32) = match name {
        "path_open" => {
            let path = read_string(&mut caller, p(2), p(3));
            let write = arg_i64(params, 5).map(|rights| rights & (1 << 6) != 0);
            (
                json!({"fd": p(0), "path": path, "oflags": p(4), "write": write}),
                ENOTCAPABLE,
            )
        }
        "path_create_directory"
        | "path_remove_directory"
        | "path_unlink_file"
        | "path_readlink" => (
            json!({"fd": p(0), "path": read_string(&mut caller, p(1), p(2))}),
            ENOTCAPABLE,
        ),
        "path_filestat_get" | "path_filestat_set_times" => (
            json!({"fd": p(0), "path": read_string(&mut caller, p(2), p(3))}),
            ENOTCAPABLE,
        ),
        "path_rename" => {
            let from = read_string(&mut caller, p(1), p(2));
            let to = read_string(&mut caller, p(4), p(5));
            (json!({"fd": p(0), "path": from, "to": to}), ENOTCAPABLE)
        }
        "path_symlink" => {
            let target = read_string(&mut caller, p(0), p(1));
            let link = read_string(&mut caller, p(3), p(4));
            (
                json!({"fd": p(2), "path": link, "target": target}),
                ENOTCAPABLE,
            )
        }
        "path_link" => {
            let from = read_string(&mut caller, p(2), p(3));
            let to = read_string(&mut caller, p(5), p(6));
            (json!({"fd": p(0), "path": from, "to": to}), ENOTCAPABLE)
        }
        "fd_write" | "fd_pwrite" => fd_write(&mut caller, params),
        "fd_fdstat_get" => {
            let fd = p(0);
            let errno = match fd {
                Some(fd @ 0..=2) => {
                    // filetype 2 (character device), no flags, rights: fd_read on 0, fd_write on 1/2.
                    let rights: u64 = if fd == 0 { 1 << 1 } else { 1 << 6 };
                    let mut stat = [0u8; 24];
                    stat[0] = 2;
                    stat[8..16].copy_from_slice(&rights.to_le_bytes());
                    if write_bytes(&mut caller, p(1), &stat) {
                        ESUCCESS
                    } else {
                        EINVAL
                    }
                }
                _ => EBADF,
            };
            (json!({"fd": fd}), errno)
        }
        n if n.starts_with("fd_") => (json!({"fd": p(0)}), EBADF),
        "environ_sizes_get" | "args_sizes_get" => {
            let ok = write_bytes(&mut caller, p(0), &0u32.to_le_bytes())
                && write_bytes(&mut caller, p(1), &0u32.to_le_bytes());
            (json!({}), if ok { ESUCCESS } else { EINVAL })
        }
        "environ_get" | "args_get" => (json!({}), ESUCCESS),
        "clock_time_get" => {
            let id = p(0);
            let (clock, value) = match id {
                Some(0) => (
                    "realtime",
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .ok(),
                ),
                Some(1) => (
                    "monotonic",
                    Some(caller.data().started.elapsed().as_nanos() as u64),
                ),
                Some(2) => (
                    "process_cputime",
                    Some(caller.data().started.elapsed().as_nanos() as u64),
                ),
                Some(3) => (
                    "thread_cputime",
                    Some(caller.data().started.elapsed().as_nanos() as u64),
                ),
                _ => ("unknown", None),
            };
            let errno = match value {
                Some(v) if write_bytes(&mut caller, p(2), &v.to_le_bytes()) => ESUCCESS,
                _ => EINVAL,
            };
            (
                json!({"clock_id": id, "clock": clock, "value": value}),
                errno,
            )
        }
        "clock_res_get" => {
            let ok = write_bytes(&mut caller, p(1), &1000u64.to_le_bytes());
            (
                json!({"clock_id": p(0)}),
                if ok { ESUCCESS } else { EINVAL },
            )
        }
        "random_get" => {
            let len = p(1).and_then(|l| usize::try_from(l).ok());
            let errno = match len {
                Some(len) if len <= MAX_RANDOM_BYTES => {
                    let mut bytes = vec![0u8; len];
                    caller.data_mut().rng.fill_bytes(&mut bytes);
                    if write_bytes(&mut caller, p(0), &bytes) {
                        ESUCCESS
                    } else {
                        EINVAL
                    }
                }
                _ => EINVAL,
            };
            (json!({"bytes": len}), errno)
        }
        "proc_exit" => {
            let code = p(0).unwrap_or(-1);
            caller.data_mut().record(name, json!({"code": code}), None);
            return Err(wasmtime::Error::new(ProcExit(code)));
        }
        "sched_yield" => (json!({}), ESUCCESS),
        n if n.starts_with("sock_") => (json!({"fd": p(0)}), ENOTCAPABLE),
        _ => (json!({}), ENOSYS),
    };
    caller.data_mut().record(name, args, Some(errno));
    for (slot, ty) in results.iter_mut().zip(result_types) {
        *slot = match ty {
            ValType::I32 => Val::I32(errno),
            other => other.default_value().unwrap_or(Val::I32(0)),
        };
    }
    Ok(())
}

/// fd_write: stdout/stderr are captured (bounded) into the event, never written anywhere.
fn fd_write(caller: &mut Caller<'_, HostState>, params: &[Val]) -> (Json, i32) {
    let fd = arg_i32(params, 0);
    if !matches!(fd, Some(1 | 2)) {
        return (json!({"fd": fd}), EBADF);
    }
    let Some(memory) = memory_of(caller) else {
        return (json!({"fd": fd}), EINVAL);
    };
    let (iovs, count) = (
        arg_i32(params, 1).unwrap_or(-1),
        arg_i32(params, 2).unwrap_or(-1),
    );
    let (Ok(iovs), Ok(count)) = (usize::try_from(iovs), usize::try_from(count)) else {
        return (json!({"fd": fd}), EINVAL);
    };
    let mut total = 0usize;
    let mut text = Vec::new();
    {
        let data = memory.data(&*caller);
        for i in 0..count.min(MAX_IOVECS) {
            let at = iovs + i * 8;
            let Some(iov) = data.get(at..at + 8) else {
                return (json!({"fd": fd}), EINVAL);
            };
            let ptr = u32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]) as usize;
            let len = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]) as usize;
            let Some(buf) = data.get(ptr..ptr.saturating_add(len)) else {
                return (json!({"fd": fd}), EINVAL);
            };
            total += len;
            let room = MAX_DECODED_BYTES.saturating_sub(text.len());
            text.extend_from_slice(&buf[..len.min(room)]);
        }
    }
    let state = caller.data_mut();
    let keep = MAX_CAPTURED_OUTPUT
        .saturating_sub(state.captured_output)
        .min(text.len());
    state.captured_output += keep;
    text.truncate(keep);
    let nwritten = u32::try_from(total).unwrap_or(u32::MAX);
    let errno = if write_bytes(caller, arg_i32(params, 3), &nwritten.to_le_bytes()) {
        ESUCCESS
    } else {
        EINVAL
    };
    (
        json!({"fd": fd, "bytes": total, "text": String::from_utf8_lossy(&text)}),
        errno,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(wat: &str) -> Result<WasmModel, String> {
        load(wat.as_bytes())
    }

    const DOUBLER: &str = r#"(module
      (memory (export "memory") 1)
      (global $next (mut i32) (i32.const 1024))
      (func (export "mv_alloc") (param $n i32) (result i32)
        (local $p i32) (local.set $p (global.get $next))
        (global.set $next (i32.add (global.get $next) (local.get $n))) (local.get $p))
      (func (export "mv_input_len") (result i32) (i32.const 2))
      (func (export "mv_output_len") (result i32) (i32.const 2))
      (func (export "mv_infer") (param $in i32) (param $n i32) (param $out i32) (result i32)
        (local $i i32)
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $i) (i32.mul (local.get $n) (i32.const 2))))
          (f32.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2)))
            (f32.mul (f32.const 2) (f32.load (i32.add (local.get $in) (i32.shl (local.get $i) (i32.const 2))))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
        (i32.const 0)))"#;

    #[test]
    fn abi_round_trip_and_buffer_reuse() {
        let mut m = model(DOUBLER).unwrap();
        assert_eq!(m.info().inputs[0].shape, vec![json!("N"), json!(2)]);
        let (mut out, mut shape, mut events) = (Vec::new(), Vec::new(), Vec::new());
        m.infer(
            &[1.0, -2.0, 3.5, 0.25],
            &[2, 2],
            DEFAULT_CALL_DEADLINE,
            &mut out,
            &mut shape,
            &mut events,
        )
        .unwrap();
        assert_eq!(out, vec![2.0, -4.0, 7.0, 0.5]);
        assert_eq!(shape, vec![2, 2]);
        let first = m.in_buf;
        m.infer(
            &[1.0, 1.0],
            &[1, 2],
            DEFAULT_CALL_DEADLINE,
            &mut out,
            &mut shape,
            &mut events,
        )
        .unwrap();
        assert_eq!(m.in_buf, first, "a smaller batch reuses the buffer");
        let err = m
            .infer(
                &[1.0; 3],
                &[1, 3],
                DEFAULT_CALL_DEADLINE,
                &mut out,
                &mut shape,
                &mut events,
            )
            .unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::Shape);
    }

    #[test]
    fn foreign_import_modules_are_refused_by_name() {
        let err = model(r#"(module (import "env" "system" (func (param i32) (result i32))))"#)
            .err()
            .unwrap();
        assert!(err.contains("env::system"), "{err}");
    }

    #[test]
    fn precompiled_artefacts_are_refused() {
        let err = load(b"\x7fELF\x02\x01\x01\0\0\0\0\0").err().unwrap();
        assert!(err.contains("precompiled"), "{err}");
    }

    #[test]
    fn initial_memory_over_the_cap_is_a_load_error() {
        let err = model(r#"(module (memory (export "memory") 8192))"#)
            .err()
            .unwrap();
        assert!(err.contains("memory cap"), "{err}");
    }

    #[test]
    fn wasi_calls_are_recorded_and_denied() {
        let wat = r#"(module
          (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "hello")
          (data (i32.const 32) "\10\00\00\00\05\00\00\00")
          (func (export "mv_alloc") (param i32) (result i32) (i32.const 1024))
          (func (export "mv_input_len") (result i32) (i32.const 1))
          (func (export "mv_output_len") (result i32) (i32.const 1))
          (func (export "mv_infer") (param i32 i32 i32) (result i32)
            (drop (call $prestat (i32.const 3) (i32.const 64)))
            (drop (call $write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 48)))
            (call $exit (i32.const 7))
            (i32.const 0)))"#;
        let mut m = model(wat).unwrap();
        let (mut out, mut shape, mut events) = (Vec::new(), Vec::new(), Vec::new());
        let err = m
            .infer(
                &[0.0],
                &[1, 1],
                DEFAULT_CALL_DEADLINE,
                &mut out,
                &mut shape,
                &mut events,
            )
            .unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::Trap);
        assert!(err.message.contains("proc_exit(7)"), "{}", err.message);
        let names: Vec<&str> = events.iter().map(|e| e.import.as_str()).collect();
        assert_eq!(names, ["fd_prestat_get", "fd_write", "proc_exit"]);
        assert_eq!(events[0].result, Some(EBADF));
        assert_eq!(events[1].args["text"], "hello");
        assert_eq!(events[1].result, Some(ESUCCESS));
        assert_eq!(events[2].args["code"], 7);
    }
}
