//! Request tensors through shared memory: the supervisor writes each batch into one of two slots
//! of a sealed memfd and sends only a control message naming the slot; the host copies the slot
//! into its input tensor. That replaces a write into the socket and a read out of it (two kernel
//! copies through socket buffers, on the host's critical path) with one memcpy on each side.
//!
//! Safety of the arrangement:
//! - the host gets a read-only descriptor (reopened through /proc/self/fd with O_RDONLY), so it
//!   can neither map the region writable nor change what the supervisor wrote;
//! - the memfd is sealed against shrinking and growing before the host sees it, so the host
//!   cannot truncate it under the supervisor's mapping (which would turn the supervisor's next
//!   write into SIGBUS);
//! - a slot is rewritten only after the host answered the request that used it, and the host
//!   copies a slot before it computes, so no side reads memory the other is writing;
//! - the host checks every offset and length against its mapping.
//!
//! Like channel.rs, this file depends on nothing else in the crate (the examples include both).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Bytes of one slot; larger batches travel over the socket as before.
pub const SLOT_BYTES: usize = 32 << 20;
/// Two slots: one being read by the host, one being filled by the supervisor.
pub const SLOTS: usize = 2;
const REGION_BYTES: usize = SLOT_BYTES * SLOTS;

fn check(what: &str, ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(ret)
    }
}

/// A shared mapping of `len` bytes, unmapped on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access goes through &self/&mut self.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(fd: RawFd, len: usize, prot: libc::c_int) -> io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of an fd at offset 0; the kernel picks the address.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, 0) };
        if ptr == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("mmap: {e}")));
        }
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The supervisor's side: a sealed memfd, mapped read-write here.
pub struct SharedInputs {
    fd: OwnedFd,
    map: Mapping,
}

impl std::fmt::Debug for SharedInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedInputs")
            .field("fd", &self.fd)
            .finish()
    }
}

impl SharedInputs {
    /// Makes the region. Its pages cost nothing until a batch is written into them.
    pub fn create() -> io::Result<SharedInputs> {
        let name: &CStr = c"modelvet-inputs";
        // SAFETY: NUL-terminated name and flag constants.
        let fd = check("memfd_create", unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        })?;
        // SAFETY: the kernel just returned this descriptor; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate on our own memfd.
        check("ftruncate", unsafe {
            libc::ftruncate(fd.as_raw_fd(), REGION_BYTES as libc::off_t)
        })?;
        // SAFETY: fcntl with integer arguments on our own memfd.
        check("F_ADD_SEALS", unsafe {
            libc::fcntl(
                fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
            )
        })?;
        let map = Mapping::new(
            fd.as_raw_fd(),
            REGION_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
        )?;
        Ok(SharedInputs { fd, map })
    }

    /// A read-only descriptor of the region for the host.
    pub fn read_only_fd(&self) -> io::Result<OwnedFd> {
        let path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let file = std::fs::OpenOptions::new().read(true).open(path)?;
        Ok(OwnedFd::from(file))
    }

    /// Writes `values` into `slot`; returns the byte offset to name in the request, or None when
    /// they do not fit a slot.
    pub fn put(&mut self, slot: usize, values: &[f32]) -> Option<u64> {
        let bytes = std::mem::size_of_val(values);
        if bytes > SLOT_BYTES || slot >= SLOTS {
            return None;
        }
        let offset = slot * SLOT_BYTES;
        // SAFETY: offset + bytes <= REGION_BYTES (checked above), so the pointer stays inside
        // our read-write mapping, whose length the seals keep fixed.
        let dst = unsafe { self.map.ptr.add(offset) };
        // SAFETY: dst..dst+bytes is inside the mapping (above); the source is a valid slice that
        // cannot overlap a MAP_SHARED mapping made here. f32 has no invalid bit patterns.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr().cast::<u8>(), dst, bytes) };
        Some(offset as u64)
    }
}

/// The host's side: the region mapped read-only.
pub struct SharedView {
    map: Mapping,
}

impl SharedView {
    /// Maps the descriptor the supervisor passed (it must be the sealed region: its size is
    /// checked against what the protocol expects).
    pub fn open(fd: OwnedFd) -> io::Result<SharedView> {
        // SAFETY: fstat only writes into the zeroed buffer we pass.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and writable stat buffer.
        check("fstat", unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) })?;
        if stat.st_size as usize != REGION_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "shared region of {} bytes, expected {REGION_BYTES}",
                    stat.st_size
                ),
            ));
        }
        let map = Mapping::new(fd.as_raw_fd(), REGION_BYTES, libc::PROT_READ)?;
        Ok(SharedView { map })
    }

    /// The `len` values at byte `offset`, which must lie inside one slot.
    #[cfg(target_endian = "little")]
    pub fn slice(&self, offset: u64, len: usize) -> Result<&[f32], String> {
        let bytes = len
            .checked_mul(4)
            .ok_or_else(|| "shared tensor too large".to_string())?;
        let offset = usize::try_from(offset).map_err(|_| "offset out of range".to_string())?;
        let slot_end = (offset / SLOT_BYTES + 1) * SLOT_BYTES;
        if offset % 4 != 0
            || offset >= self.map.len
            || offset.checked_add(bytes).is_none_or(|end| end > slot_end)
        {
            return Err(format!(
                "shared tensor of {bytes} bytes at offset {offset} is outside its slot"
            ));
        }
        // SAFETY: offset < the mapping's length (checked above).
        let start = unsafe { self.map.ptr.add(offset) }.cast::<f32>();
        // SAFETY: start..start+bytes lies inside one slot of our read-only mapping (checked
        // above; the memfd is sealed against shrinking, so the mapping stays backed for our
        // lifetime, which the returned borrow cannot outlive); the mapping is page-aligned and
        // offset a multiple of 4, so the f32s are aligned, and every bit pattern is a valid f32.
        // By protocol the supervisor does not write this slot until we answer the request.
        Ok(unsafe { std::slice::from_raw_parts(start, len) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_written_by_the_supervisor_reach_the_host_view() {
        let mut shared = SharedInputs::create().unwrap();
        let view = SharedView::open(shared.read_only_fd().unwrap()).unwrap();
        let values: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 3.0).collect();
        let off = shared.put(1, &values).unwrap();
        assert_eq!(off, SLOT_BYTES as u64);
        assert_eq!(view.slice(off, 1000).unwrap(), &values[..]);
        // Out of the slot or the region: refused, not read.
        assert!(view.slice(SLOT_BYTES as u64 - 8, 1000).is_err());
        assert!(view.slice(REGION_BYTES as u64, 1).is_err());
        assert!(view.slice(3, 1).is_err());
        assert!(view.slice(0, usize::MAX).is_err());
        assert!(shared.put(2, &values).is_none());
    }

    #[test]
    fn the_host_can_neither_write_nor_shrink_the_region() {
        let shared = SharedInputs::create().unwrap();
        let ro = shared.read_only_fd().unwrap();
        // SAFETY: test-only attempts at a writable mapping and a truncation of our own memfd.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                ro.as_raw_fd(),
                0,
            )
        };
        assert_eq!(
            p,
            libc::MAP_FAILED,
            "a writable mapping of the read-only fd"
        );
        // SAFETY: as above.
        assert!(unsafe { libc::ftruncate(ro.as_raw_fd(), 0) } < 0);
        // Even through the read-write descriptor the seals hold.
        // SAFETY: as above.
        assert!(unsafe { libc::ftruncate(shared.fd.as_raw_fd(), 4096) } < 0);
    }
}
