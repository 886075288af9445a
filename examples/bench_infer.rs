//! Measures ONNX inference throughput: the same optimised tract plan the model host builds, run
//! in-process, or (with `--host BIN`) through `BIN __host MODEL` over the channel (requests in
//! the shared region, the next one in flight, as the probe sends them). `--distinct N` cycles
//! through N different batches instead of reusing one (a probe streams a dataset's rows).
//! Prints one number on stdout: inferences (samples) per second; details go to stderr.
//! Run: `cargo run --release -p modelvet --example bench_infer -- MODEL.onnx [BATCH] [SECONDS] [--distinct N] [--host target/<host triple>/release/modelvet]`

#[allow(dead_code)]
#[path = "../runner/src/host/channel.rs"]
mod channel;
#[allow(dead_code)]
#[path = "../runner/src/host/chunks.rs"]
mod chunks;
#[allow(dead_code)]
#[path = "../runner/src/host/conv.rs"]
mod conv;
#[allow(dead_code)]
#[path = "../runner/src/host/dense.rs"]
mod dense;
#[allow(dead_code)]
#[path = "../runner/src/host/plan.rs"]
mod plan;
#[allow(dead_code)]
#[path = "../runner/src/host/pool.rs"]
mod pool;
#[allow(dead_code)]
#[path = "../runner/src/host/shared.rs"]
mod shared;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// Runs before timing starts, so lazy initialisation and caches do not count.
const WARMUP_RUNS: usize = 5;

struct Args {
    model: PathBuf,
    batch: usize,
    seconds: f64,
    host: Option<PathBuf>,
    /// Distinct batches cycled through (as a probe feeds a dataset's rows); 1 reuses one buffer.
    distinct: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut host = None;
    let mut distinct = 1;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--distinct" {
            distinct = it
                .next()
                .ok_or("--distinct needs a count")?
                .parse::<usize>()
                .map_err(|e| format!("--distinct: {e}"))?
                .max(1);
        } else if arg == "--host" {
            host = Some(PathBuf::from(
                it.next().ok_or("--host needs the modelvet binary")?,
            ));
        } else {
            positional.push(arg);
        }
    }
    let model =
        PathBuf::from(positional.first().ok_or(
            "usage: bench_infer MODEL.onnx [BATCH] [SECONDS] [--distinct N] [--host BIN]",
        )?);
    let batch = positional
        .get(1)
        .map_or(Ok(32), |b| b.parse())
        .map_err(|e| format!("BATCH: {e}"))?;
    let seconds = positional
        .get(2)
        .map_or(Ok(3.0), |s| s.parse())
        .map_err(|e| format!("SECONDS: {e}"))?;
    Ok(Args {
        model,
        batch,
        seconds,
        host,
        distinct,
    })
}

/// The input shape for `batch`: symbolic dims take the batch size, fixed dims stay.
fn input_shape(fact: &InferenceFact, batch: usize) -> Result<Vec<usize>, String> {
    let shape: Vec<usize> = fact
        .shape
        .dims()
        .map(|d| {
            d.concretize()
                .and_then(|t| t.as_i64())
                .map(|v| v as usize)
                .unwrap_or(batch)
        })
        .collect();
    if shape.is_empty() {
        return Err("the model's input shape is unknown".into());
    }
    Ok(shape)
}

fn input_values(count: usize) -> Vec<f32> {
    (0..count)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect()
}

fn in_process(
    model: &Path,
    batch: usize,
    seconds: f64,
    distinct: usize,
) -> Result<(f64, Vec<usize>), String> {
    let inference = tract_onnx::onnx()
        .model_for_path(model)
        .map_err(|e| format!("{e:#}"))?;
    let shape = input_shape(inference.input_fact(0).map_err(|e| e.to_string())?, batch)?;
    // The host's plan and way of running it: typed, decluttered, tract's strided 2x2 pools
    // swapped for `pool::Pool2x2`, large batches run in `chunks::rows_per_run` row chunks.
    let typed = plan::typed_for_host(inference).map_err(|e| format!("{e:#}"))?;
    let rows = chunks::rows_per_run(&typed).unwrap_or(0);
    let plan = typed
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| format!("{e:#}"))?;
    let mut state = plan.spawn().map_err(|e| e.to_string())?;
    let per_batch: usize = shape.iter().product();
    let values = input_values(per_batch * distinct);
    let mut next = 0;
    let mut run = |state: &mut TypedSimpleState| -> Result<(), String> {
        let start = (next % distinct) * per_batch;
        next += 1;
        let tensor = Tensor::from_shape(&shape, &values[start..start + per_batch])
            .map_err(|e| e.to_string())?;
        chunks::run_in_chunks(state, tensor, rows).map_err(|e| format!("{e:#}"))?;
        Ok(())
    };
    for _ in 0..WARMUP_RUNS {
        run(&mut state)?;
    }
    let (started, mut runs) = (Instant::now(), 0usize);
    while started.elapsed().as_secs_f64() < seconds {
        run(&mut state)?;
        runs += 1;
    }
    Ok((
        (runs * shape[0]) as f64 / started.elapsed().as_secs_f64(),
        shape,
    ))
}

fn through_host(
    bin: &Path,
    model: &Path,
    batch: usize,
    seconds: f64,
    distinct: usize,
) -> Result<(f64, Vec<usize>), String> {
    let (ours, theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
    let fd = theirs.as_raw_fd();
    let mut cmd = Command::new(bin);
    // As the probe does: request tensors through the shared region, handed over as fd 4.
    let shared = shared::SharedInputs::create().map_err(|e| e.to_string())?;
    let shared_ro = shared.read_only_fd().map_err(|e| e.to_string())?;
    let sfd = shared_ro.as_raw_fd();
    cmd.arg("__host")
        .arg("--shared-fd")
        .arg("4")
        .arg(model)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let hook = move || -> std::io::Result<()> {
        // The sources sit above 4 after moving them there (dup2 onto 3 and 4 would otherwise
        // clobber one with the other).
        // fcntl(F_DUPFD) and dup2 on descriptors we own are async-signal-safe, as required between
        // fork and exec; the new fds have no close-on-exec.
        // SAFETY: as above.
        let a = unsafe { libc::fcntl(fd, libc::F_DUPFD, 10) };
        // SAFETY: as above.
        let b = unsafe { libc::fcntl(sfd, libc::F_DUPFD, 10) };
        // SAFETY: as above.
        let rc = if a < 0 || b < 0 || unsafe { libc::dup2(a, 3) } < 0 {
            -1
        } else {
            // SAFETY: as above.
            unsafe { libc::dup2(b, 4) }
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
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
    drop(theirs);
    drop(shared_ro);
    let result = (|| {
        let (mut client, info) = channel::HostClient::connect(ours, Duration::from_secs(60))
            .map_err(|e| e.to_string())?;
        client.use_shared(shared);
        let shape: Vec<usize> = info.inputs[0]
            .shape
            .iter()
            .map(|d| d.as_u64().map_or(batch, |v| v as usize))
            .collect();
        let per_batch: usize = shape.iter().product();
        let values = input_values(per_batch * distinct);
        let mut out = channel::Inference::default();
        for _ in 0..WARMUP_RUNS {
            client
                .infer_into(&values[..per_batch], &shape, &mut out)
                .map_err(|e| e.to_string())?;
        }
        // As the probe sends them: consecutive batches, the next one in flight while the host
        // computes.
        let (started, mut runs) = (Instant::now(), 0usize);
        let mut next = 0;
        let batches = std::iter::from_fn(|| {
            let start = (next % distinct) * per_batch;
            next += 1;
            (started.elapsed().as_secs_f64() < seconds)
                .then_some((&values[start..start + per_batch], &shape[..]))
        });
        client
            .infer_pipelined(batches, |_, _| {
                runs += 1;
                true
            })
            .map_err(|e| e.to_string())?;
        let rate = (runs * shape[0]) as f64 / started.elapsed().as_secs_f64();
        client.close().map_err(|e| e.to_string())?;
        Ok((rate, shape))
    })();
    let _ = child.wait();
    result
}

/// The `memcpy` `modelvet` itself uses on musl, so that both sides compare alike.
#[path = "../runner/src/memcpy.rs"]
mod memcpy;

/// The allocator `modelvet` itself uses on musl, so that both sides compare alike.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: sandbox::alloc::Pool = sandbox::alloc::Pool;

fn main() -> std::process::ExitCode {
    let result = parse_args().and_then(|args| {
        let (rate, shape) = match &args.host {
            Some(bin) => through_host(bin, &args.model, args.batch, args.seconds, args.distinct)?,
            None => in_process(&args.model, args.batch, args.seconds, args.distinct)?,
        };
        let mode = if args.host.is_some() {
            "through the host channel"
        } else {
            "in-process tract"
        };
        eprintln!(
            "{}: {mode}, input {shape:?}: {rate:.0} inferences/s",
            args.model.display()
        );
        println!("{rate:.1}");
        Ok(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_infer: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
