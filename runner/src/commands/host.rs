//! `modelvet __host MODEL`: the hidden model-host mode. The supervisor (or a test) hands it an
//! already connected SOCK_STREAM unix socket as file descriptor 3 and talks the channel protocol.

use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;

use crate::cli::HostArgs;
use crate::error::{CliError, Result};
use crate::host;

/// The descriptor the channel socket arrives on.
const CHANNEL_FD: i32 = 3;

pub fn run(args: HostArgs) -> Result<u8> {
    keep_freed_memory();
    let stream = channel_socket()?;
    let source = match args.fd {
        Some(fd) => host::Source::Fd(owned_file(fd)?),
        None => host::Source::Path,
    };
    let shared = match args.shared_fd {
        Some(fd) => Some(shared_region(fd)?),
        None => None,
    };
    host::serve_from(&args.model, source, stream, shared)
        .map_err(|e| CliError::Input(e.to_string()))?;
    Ok(0)
}

/// glibc returns freed heap tops to the kernel eagerly: with a fresh input tensor per request
/// that is two `brk` calls per inference. Keeping up to this much freed memory stops the churn.
/// (The musl build's allocator keeps freed memory of its own accord, see `sandbox::alloc`.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_TRIM_THRESHOLD_BYTES: i32 = 256 << 20;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only adjusts allocator tunables; it runs before this process starts any
    // thread or makes a large allocation, and a refusal (returns 0) is harmless.
    unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES) };
    // SAFETY: as above.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// Takes ownership of the model descriptor after checking it is an open regular file.
fn owned_file(fd: i32) -> Result<std::fs::File> {
    // SAFETY: fstat only writes into the zeroed stat buffer we pass; an invalid fd yields -1.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is a valid, writable libc::stat for the duration of the call.
    let rc = unsafe { libc::fstat(fd, &mut stat) };
    if fd <= CHANNEL_FD || rc != 0 || stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(CliError::Input(format!(
            "__host --fd {fd}: not an open regular file"
        )));
    }
    // SAFETY: fd is open and a regular file (checked above); by the host-mode contract it is
    // ours alone, so the File becomes its only owner.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Maps the shared region handed over on `fd` (checked by `SharedView::open`: its size must be
/// the protocol's).
fn shared_region(fd: i32) -> Result<host::shared::SharedView> {
    // SAFETY: fcntl(F_GETFD) only queries whether fd is open.
    if fd <= CHANNEL_FD || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(CliError::Input(format!(
            "__host --shared-fd {fd}: not an open descriptor"
        )));
    }
    // SAFETY: fd is open (checked above) and by the host-mode contract ours alone.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    host::shared::SharedView::open(fd)
        .map_err(|e| CliError::Input(format!("__host --shared-fd: {e}")))
}

/// Takes ownership of fd 3 after checking it is an open socket.
fn channel_socket() -> Result<UnixStream> {
    // SAFETY: fstat only writes into the zeroed stat buffer we pass; an invalid fd yields -1.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is a valid, writable libc::stat for the duration of the call.
    let rc = unsafe { libc::fstat(CHANNEL_FD, &mut stat) };
    if rc != 0 || stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(CliError::Input(format!(
            "__host expects a connected unix socket on fd {CHANNEL_FD}; it is an internal mode of `modelvet probe`"
        )));
    }
    // SAFETY: fd 3 is open and a socket (checked above); by the host-mode contract it belongs to
    // this process alone, so the UnixStream becomes its only owner and closes it on drop.
    Ok(unsafe { UnixStream::from_raw_fd(CHANNEL_FD) })
}
