//! A sandboxed model host: `modelvet __host MODEL` started inside the jail with one end of a
//! socketpair as its fd 3, and the client over the other end. If the host crashes or hangs, the
//! session can start a fresh one; every run's sandbox record is kept.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use probes::classifier::{Classifier, ClassifierError};

use crate::cli::SandboxArgs;
use crate::commands::jail::{config, sandbox_error};
use crate::error::{CliError, Result};
use crate::host::channel::{ChannelError, HostClient, HostEvent, ModelInfo};
use crate::host::shared::SharedInputs;

/// The model host's allow tier, learnt by running tract and wasmtime hosts with every syscall
/// notified (`MODELVET_RECORD_ALL=1 modelvet probe ...`, see README "Sandbox"): exactly what
/// they called, nothing more. Any other syscall is notified and recorded as unknown; opens,
/// execs, clones and sockets stay in the record tier; the deny tier is unchanged.
pub const HOST_ALLOW: &[(i64, &str)] = &[
    (libc::SYS_read, "channel and model file reads"),
    (libc::SYS_recvfrom, "channel: requests (the hot path)"),
    (libc::SYS_recvmsg, "channel: requests"),
    (libc::SYS_write, "channel replies"),
    (libc::SYS_writev, "channel: framed replies (the hot path)"),
    (libc::SYS_pread64, "dynamic loader"),
    (libc::SYS_close, "descriptor bookkeeping"),
    (libc::SYS_fcntl, "descriptor bookkeeping"),
    (libc::SYS_lseek, "model file reads"),
    (libc::SYS_fstat, "model file size"),
    (libc::SYS_newfstatat, "model file size, loader"),
    (libc::SYS_statx, "model file size"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_access, "dynamic loader"),
    // aarch64 has no access, arch_prctl or poll: glibc calls faccessat and ppoll there. (Mapped
    // from the x86_64 entries, not learnt on an aarch64 machine.)
    #[cfg(target_arch = "aarch64")]
    (libc::SYS_faccessat, "dynamic loader"),
    #[cfg(target_arch = "aarch64")]
    (libc::SYS_ppoll, "std start-up check of fds 0-2"),
    (libc::SYS_brk, "allocator"),
    (
        libc::SYS_mmap,
        "allocator, tensors, wasmtime linear memory and code",
    ),
    (libc::SYS_munmap, "allocator"),
    (libc::SYS_mremap, "allocator"),
    (libc::SYS_madvise, "allocator, wasmtime memory reset"),
    (libc::SYS_mprotect, "wasmtime: JIT code W^X, guard pages"),
    (libc::SYS_membarrier, "wasmtime: code publication"),
    (libc::SYS_futex, "wasmtime epoch ticker thread"),
    (libc::SYS_clock_nanosleep, "wasmtime epoch ticker thread"),
    (libc::SYS_nanosleep, "wasmtime epoch ticker thread"),
    (libc::SYS_clock_gettime, "deadlines"),
    (libc::SYS_sched_yield, "threads"),
    (libc::SYS_sched_getaffinity, "thread pool sizing"),
    (libc::SYS_set_robust_list, "thread start"),
    (libc::SYS_rseq, "thread start"),
    (libc::SYS_set_tid_address, "process start"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_arch_prctl, "process start"),
    (libc::SYS_prlimit64, "stack size at start"),
    (libc::SYS_prctl, "thread names"),
    (libc::SYS_gettid, "thread identity"),
    (libc::SYS_getpid, "identity"),
    (libc::SYS_getrandom, "hash seeds"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_poll, "std start-up check of fds 0-2"),
    (libc::SYS_rt_sigaction, "wasmtime trap handlers"),
    (
        libc::SYS_rt_sigprocmask,
        "wasmtime trap handlers, thread start",
    ),
    (libc::SYS_rt_sigreturn, "wasmtime traps"),
    (libc::SYS_sigaltstack, "wasmtime trap handlers"),
    (libc::SYS_tgkill, "abort on a host panic"),
    (libc::SYS_exit, "thread exit"),
    (libc::SYS_exit_group, "exit"),
];

/// Send buffer of our end of the channel: a whole batch (256 MNIST rows are 800 KB) goes out in
/// one write instead of a ping-pong of 200 KB chunks between us and the host.
const CHANNEL_SEND_BUFFER: i32 = 8 << 20;

/// SO_SNDBUFFORCE when we may (root), else SO_SNDBUF (capped by net.core.wmem_max); a smaller
/// buffer only costs speed.
fn grow_send_buffer(sock: &UnixStream, bytes: i32) {
    use std::os::fd::AsRawFd;
    for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
        // SAFETY: setsockopt with a valid fd and a pointer to an i32 of the size passed.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return;
        }
    }
}

/// A host event with the time it reached us (WASI imports the model called).
#[derive(Debug, Clone)]
pub struct TimedHostEvent {
    pub t_ms: f64,
    pub event: HostEvent,
}

/// Host events kept for the report: the first `MAX_HOST_EVENTS` (as many as the sandbox keeps of
/// its own), the rest counted; every call is counted per import, with the first call's
/// arguments, for the findings. A model calling an import on every inference cannot blow up the
/// supervisor's memory or the report.
#[derive(Debug, Default)]
pub struct HostEventLog {
    pub kept: Vec<TimedHostEvent>,
    pub dropped: u64,
    pub per_import: std::collections::BTreeMap<String, (usize, String)>,
}

pub const MAX_HOST_EVENTS: usize = 10_000;
/// Distinct import names counted one by one; past it they count as `other` (an exploited host
/// could name a new one per event).
pub const MAX_IMPORTS: usize = 256;
/// The longest import name and argument record kept from the host.
const MAX_IMPORT_NAME: usize = 128;
pub const MAX_EVENT_ARGS: usize = 1024;

impl HostEventLog {
    pub fn add(&mut self, t_ms: f64, mut event: HostEvent) {
        event.import =
            crate::host::channel::cut(std::mem::take(&mut event.import), MAX_IMPORT_NAME);
        if !self.per_import.contains_key(&event.import) && self.per_import.len() >= MAX_IMPORTS {
            event.import = "other".into();
        }
        let args = event.args.to_string();
        if args.len() > MAX_EVENT_ARGS {
            event.args = serde_json::json!({ "not_kept_bytes": args.len() });
        }
        let entry = self
            .per_import
            .entry(event.import.clone())
            .or_insert_with(|| (0, event.args.to_string()));
        entry.0 += 1;
        if self.kept.len() < MAX_HOST_EVENTS {
            self.kept.push(TimedHostEvent { t_ms, event });
        } else {
            self.dropped += 1;
        }
    }

    pub fn extend(&mut self, t_ms: f64, events: impl IntoIterator<Item = HostEvent>) {
        for e in events {
            self.add(t_ms, e);
        }
    }
}

pub struct Session {
    model: PathBuf,
    sandbox: SandboxArgs,
    host: sandbox::HostSupport,
    call_timeout: Duration,
    running: Option<sandbox::Running>,
    client: Option<HostClient>,
    pub outcomes: Vec<sandbox::Outcome>,
    pub host_events: HostEventLog,
    pub start: Instant,
    pub restarts: usize,
    /// Model failures by kind ("timeout", "memory", "trap", "crash", ...): count and first message.
    pub failures: std::collections::BTreeMap<String, (usize, String)>,
}

/// How a session start ended: a loaded model, or the model's own failure (a finding).
pub enum Started {
    Loaded(ModelInfo),
    Failed(ChannelError),
}

impl Session {
    pub fn new(
        model: &Path,
        sandbox: &SandboxArgs,
        host: sandbox::HostSupport,
        call_timeout: Duration,
    ) -> Session {
        Session {
            model: model.to_path_buf(),
            sandbox: sandbox.clone(),
            host,
            call_timeout,
            running: None,
            client: None,
            outcomes: Vec::new(),
            host_events: HostEventLog::default(),
            start: Instant::now(),
            restarts: 0,
            failures: Default::default(),
        }
    }

    pub fn host_support(&self) -> &sandbox::HostSupport {
        &self.host
    }

    /// Starts (or restarts) the host in a fresh sandbox and waits for its greeting.
    pub fn start(&mut self) -> Result<Started> {
        self.stop();
        let exe = std::env::current_exe()
            .map_err(|e| CliError::Sandbox(format!("cannot find the modelvet binary: {e}")))?;
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| CliError::Sandbox(format!("socketpair: {e}")))?;
        grow_send_buffer(&ours, CHANNEL_SEND_BUFFER);
        let mut cfg = config(exe, &self.sandbox);
        // The model is opened here, with our permissions, and handed over as fd 4: the host's
        // unprivileged uid need not be able to read it.
        let model = std::fs::File::open(&self.model)
            .map_err(|e| CliError::Input(format!("model {}: {e}", self.model.display())))?;
        // Request tensors go through a shared region (fd 5, read-only for the host) when one can
        // be made; the socket carries them otherwise.
        let shared = SharedInputs::create().ok();
        let shared_ro = shared.as_ref().and_then(|s| s.read_only_fd().ok());
        cfg.args = vec!["__host".into(), "--fd".into(), "4".into()];
        cfg.extra_fds = vec![OwnedFd::from(theirs), OwnedFd::from(model)];
        let shared = match shared_ro {
            Some(fd) => {
                cfg.args.extend(["--shared-fd".into(), "5".into()]);
                cfg.extra_fds.push(fd);
                shared
            }
            None => None,
        };
        cfg.args.push(self.model.clone().into_os_string());
        // MODELVET_RECORD_ALL=1 notifies every syscall: how HOST_ALLOW was learnt.
        cfg.allow = if std::env::var_os("MODELVET_RECORD_ALL").is_some() {
            &[]
        } else {
            HOST_ALLOW
        };
        cfg.cwd = Some(PathBuf::from("/"));
        let running = sandbox::spawn_with(cfg, &self.host).map_err(sandbox_error)?;
        self.running = Some(running);
        // Loading (parsing, optimising, compiling) gets the whole wall budget.
        let load_timeout = Duration::from_secs_f64(self.sandbox.timeout);
        match HostClient::connect(ours, load_timeout) {
            Ok((mut client, info)) => {
                let t = self.start.elapsed().as_secs_f64() * 1e3;
                self.host_events
                    .extend(t, client.load_events().iter().cloned());
                client.set_call_deadline(self.call_timeout.mul_f64(0.8));
                if let Some(shared) = shared {
                    client.use_shared(shared);
                }
                self.client = Some(client);
                Ok(Started::Loaded(info))
            }
            Err(e) => {
                self.stop();
                Ok(Started::Failed(e))
            }
        }
    }

    /// Ends the current host (politely if it still answers) and keeps its record.
    pub fn stop(&mut self) {
        let polite = self.client.take().is_some_and(|c| c.close().is_ok());
        if let Some(r) = self.running.take() {
            // A host that said goodbye exits by itself; anything else is killed.
            if !(polite && r.wait_exit(Duration::from_secs(2))) {
                r.kill();
            }
            self.outcomes.push(r.wait());
        }
    }

    pub fn alive(&self) -> bool {
        self.client.is_some()
    }

    /// One raw inference; a dead or hung host ends the session (the caller may `start` again).
    pub fn infer(
        &mut self,
        input: &[f32],
        shape: &[usize],
    ) -> std::result::Result<Vec<f32>, ChannelError> {
        let Some(client) = self.client.as_mut() else {
            return Err(ChannelError::Closed);
        };
        let r = client.infer(input, shape);
        let t = self.start.elapsed().as_secs_f64() * 1e3;
        match r {
            Ok(inf) => {
                self.host_events.extend(t, inf.events);
                Ok(inf.output)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Consecutive inferences with the next request already in flight while the host computes
    /// (`HostClient::infer_pipelined`); `on_output(i, scores)` gets each batch's answer in order
    /// and returns false to send no more.
    pub fn infer_batches<'a>(
        &mut self,
        batches: impl IntoIterator<Item = (&'a [f32], &'a [usize])>,
        mut on_output: impl FnMut(usize, &[f32]) -> bool,
    ) -> std::result::Result<(), ChannelError> {
        let Some(client) = self.client.as_mut() else {
            return Err(ChannelError::Closed);
        };
        let (start, host_events) = (self.start, &mut self.host_events);
        let r = client.infer_pipelined(batches, |i, inf| {
            let t_ms = start.elapsed().as_secs_f64() * 1e3;
            host_events.extend(t_ms, inf.events.drain(..));
            on_output(i, &inf.output)
        });
        r.map_err(|e| self.failed(e))
    }

    /// Records a failed request: the model's error (with the events of the failing call), or a
    /// dead or hung host, which ends the session.
    fn failed(&mut self, e: ChannelError) -> ChannelError {
        let t = self.start.elapsed().as_secs_f64() * 1e3;
        match e {
            ChannelError::Model {
                kind,
                message,
                events,
            } => {
                self.host_events.extend(t, events.iter().cloned());
                self.note_failure(&kind.to_string(), &message);
                ChannelError::Model {
                    kind,
                    message,
                    events,
                }
            }
            e => {
                let kind = if matches!(e, ChannelError::Timeout) {
                    "timeout"
                } else {
                    "crash"
                };
                self.note_failure(kind, &e.to_string());
                self.stop();
                e
            }
        }
    }
}

impl Session {
    fn note_failure(&mut self, kind: &str, message: &str) {
        self.failures
            .entry(kind.to_string())
            .or_insert((0, message.to_string()))
            .0 += 1;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Our end of the socket first: descriptors the host passed into its queue (its own
        // output pipe, say) would otherwise keep the output open and the wait waiting.
        drop(self.client.take());
        if let Some(r) = self.running.take() {
            r.kill();
            let _ = r.wait();
        }
    }
}

/// The model seen as a classifier through the session: batches are cut to `max_batch` and shaped
/// `[n, sample_shape...]`; latency and counts are kept for the performance probe.
pub struct HostClassifier<'s> {
    pub session: &'s mut Session,
    pub sample_shape: Vec<usize>,
    pub input_len: usize,
    pub classes: usize,
    pub max_batch: usize,
    pub inferences: usize,
    pub calls: usize,
    pub latencies_ms: Vec<f64>,
    pub busy: Duration,
}

impl Classifier for HostClassifier<'_> {
    fn classes(&self) -> usize {
        self.classes
    }
    fn input_len(&self) -> usize {
        self.input_len
    }
    fn predict(
        &mut self,
        batch: &[f32],
        n: usize,
    ) -> std::result::Result<Vec<f32>, ClassifierError> {
        let mut out = Vec::with_capacity(n * self.classes);
        let step = self.max_batch.max(1);
        let shape_of = |m: usize| -> Vec<usize> {
            std::iter::once(m)
                .chain(self.sample_shape.iter().copied())
                .collect()
        };
        let (full, last) = (shape_of(step), shape_of(n % step));
        let il = self.input_len;
        let batches = (0..n).step_by(step).map(|start| {
            let m = (n - start).min(step);
            let shape = if m == step { &full[..] } else { &last[..] };
            (&batch[start * il..(start + m) * il], shape)
        });
        // Latency of a batch: from the previous answer (or the first request) to its answer,
        // i.e. what each batch costs when the next one is already queued.
        let (started, mut previous) = (Instant::now(), Instant::now());
        let (mut calls, mut inferences, mut latencies) = (0, 0, Vec::new());
        let classes = self.classes;
        let mut wrong_size = None;
        let r = self.session.infer_batches(batches, |i, scores| {
            let now = Instant::now();
            latencies.push((now - previous).as_secs_f64() * 1e3);
            previous = now;
            calls += 1;
            let m = (n - i * step).min(step);
            inferences += m;
            // Checked per answer, before it is kept: a host answering each batch with a
            // tensor far larger than the batch's scores would otherwise pile them up.
            if scores.len() != m * classes {
                wrong_size = Some((scores.len(), m * classes));
                return false;
            }
            out.extend_from_slice(scores);
            true
        });
        self.busy += started.elapsed();
        self.calls += calls;
        self.inferences += inferences;
        self.latencies_ms.extend(latencies);
        match (r, wrong_size) {
            (Err(e), _) => Err(ClassifierError::Model(e.to_string())),
            (Ok(()), Some((got, want))) => Err(ClassifierError::Model(format!(
                "the model answered {got} scores where {want} were due"
            ))),
            (Ok(()), None) => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_events_are_capped_but_every_call_is_counted() {
        let mut log = HostEventLog::default();
        let clock = |i: u64| HostEvent {
            import: "clock_time_get".into(),
            args: serde_json::json!({ "id": i }),
            result: Some(0),
        };
        log.extend(1.0, (0..MAX_HOST_EVENTS as u64 + 5).map(clock));
        log.add(
            2.0,
            HostEvent {
                import: "path_open".into(),
                args: serde_json::json!({ "path": "/etc/passwd" }),
                result: Some(76),
            },
        );
        assert_eq!(log.kept.len(), MAX_HOST_EVENTS);
        assert_eq!(log.dropped, 6);
        assert_eq!(log.per_import["clock_time_get"].0, MAX_HOST_EVENTS + 5);
        assert_eq!(log.per_import["clock_time_get"].1, r#"{"id":0}"#);
        assert_eq!(log.per_import["path_open"].0, 1);
    }
}
