//! Decoding a notified syscall's arguments from the child's memory: socket addresses, paths,
//! argv. Every read is bounded, and the caller re-checks that the notification is still valid
//! after reading (the pid may have died and been reused).

use serde_json::{Map, Value, json};

use crate::sys;

/// Longest path read from the child (PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// Most argv entries recorded for an exec, and the longest entry.
pub const MAX_ARGS: usize = 32;
pub const MAX_ARG_LEN: usize = 256;
/// Largest socket address read (sockaddr_storage).
pub const MAX_SOCKADDR: usize = 128;

/// A pointer the kernel will follow that the supervisor could not read: memory hidden from other
/// processes (memfd_secret's, which the kernel itself still reads), or not mapped at all (then the
/// kernel fails the call with EFAULT anyway). Either way the record would be blank, so the call is
/// refused instead of let through unseen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// Reads a NUL-terminated string at `addr`, page by page so an unmapped page after the string
/// does not fail the read. `Ok(None)` for a NULL pointer; at most `max` bytes.
pub fn read_cstring(pid: u32, addr: u64, max: usize) -> Result<Option<String>, Unreadable> {
    if addr == 0 {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut cur = addr;
    while out.len() < max {
        let to_page = 4096 - (cur % 4096) as usize;
        let want = to_page.min(max - out.len());
        let mut buf = [0u8; 4096];
        let n = sys::process_vm_read(pid, cur, &mut buf[..want]).map_err(|_| Unreadable)?;
        if n == 0 {
            return Err(Unreadable);
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Ok(Some(String::from_utf8_lossy(&out).into_owned()));
        }
        out.extend_from_slice(&buf[..n]);
        cur += n as u64;
    }
    Ok(Some(String::from_utf8_lossy(&out).into_owned()))
}

/// Exactly `len` bytes at `addr` (`Ok(None)` for a NULL pointer or no bytes).
pub fn read_bytes(pid: u32, addr: u64, len: usize) -> Result<Option<Vec<u8>>, Unreadable> {
    if addr == 0 || len == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; len];
    match sys::process_vm_read(pid, addr, &mut buf) {
        Ok(n) if n == len => Ok(Some(buf)),
        _ => Err(Unreadable),
    }
}

fn read_u64(pid: u32, addr: u64) -> Result<Option<u64>, Unreadable> {
    Ok(read_bytes(pid, addr, 8)?
        .and_then(|b| b.try_into().ok())
        .map(u64::from_ne_bytes))
}

/// argv of an exec: a NULL-terminated array of string pointers (at most `MAX_ARGS` read).
pub fn read_argv(pid: u32, addr: u64) -> Result<Vec<String>, Unreadable> {
    let mut args = Vec::new();
    for i in 0..MAX_ARGS as u64 {
        match read_u64(pid, addr.wrapping_add(i * 8))? {
            Some(0) | None => break,
            Some(p) => args.push(read_cstring(pid, p, MAX_ARG_LEN)?.unwrap_or_default()),
        }
    }
    Ok(args)
}

pub fn family_name(family: u16) -> &'static str {
    match i32::from(family) {
        libc::AF_INET => "inet",
        libc::AF_INET6 => "inet6",
        libc::AF_UNIX => "unix",
        libc::AF_NETLINK => "netlink",
        libc::AF_VSOCK => "vsock",
        _ => "other",
    }
}

/// Decodes a sockaddr (inet, inet6, unix; others by family name only). Pure: unit-tested.
pub fn sockaddr(bytes: &[u8]) -> Map<String, Value> {
    let mut m = Map::new();
    if bytes.len() < 2 {
        m.insert("family".into(), json!("other"));
        return m;
    }
    let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
    m.insert("family".into(), json!(family_name(family)));
    match i32::from(family) {
        libc::AF_INET if bytes.len() >= 8 => {
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let ip = std::net::Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            m.insert("address".into(), json!(ip.to_string()));
            m.insert("port".into(), json!(port));
        }
        libc::AF_INET6 if bytes.len() >= 24 => {
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let mut a = [0u8; 16];
            a.copy_from_slice(&bytes[8..24]);
            m.insert(
                "address".into(),
                json!(std::net::Ipv6Addr::from(a).to_string()),
            );
            m.insert("port".into(), json!(port));
        }
        libc::AF_UNIX => {
            let path = &bytes[2..];
            if path.first() == Some(&0) && path.len() > 1 {
                // Abstract socket: name after the leading NUL.
                let name = &path[1..];
                m.insert(
                    "path".into(),
                    json!(format!("@{}", String::from_utf8_lossy(name))),
                );
                // A file may be named "@x" too: only this flag says abstract.
                m.insert("abstract".into(), json!(true));
            } else {
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                m.insert("path".into(), json!(String::from_utf8_lossy(&path[..end])));
            }
        }
        _ => {
            m.insert("family_nr".into(), json!(family));
        }
    }
    m
}

/// The socket address at `addr` of `len` bytes, `len` as the kernel takes it: an `int` (the
/// register's upper half ignored; `(1 << 32) | 15` is 15), at most a `sockaddr_storage` (the
/// kernel refuses a longer one, or for a msghdr cuts it to that). A negative length names no
/// address (the kernel fails the call).
pub fn read_sockaddr(
    pid: u32,
    addr: u64,
    len: u64,
) -> Result<Option<Map<String, Value>>, Unreadable> {
    let Ok(len) = usize::try_from(len as u32 as i32) else {
        return Ok(None);
    };
    Ok(read_bytes(pid, addr, len.min(MAX_SOCKADDR))?.map(|b| sockaddr(&b)))
}

/// The destination of a sendmsg: msg_name and msg_namelen of the msghdr at `addr`.
pub fn read_msghdr_name(pid: u32, addr: u64) -> Result<Option<Map<String, Value>>, Unreadable> {
    let Some(name) = read_u64(pid, addr)? else {
        return Ok(None);
    };
    let namelen = read_bytes(pid, addr + 8, 4)?
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_ne_bytes);
    if name == 0 || namelen == 0 {
        return Ok(None);
    }
    read_sockaddr(pid, name, u64::from(namelen))
}

/// The destinations of a sendmmsg: the msghdr at the start of each of the first `vlen` (at most
/// `MAX_MMSG`) `struct mmsghdr` at `addr`, those that name one.
/// Distinct ones only, in order. All of them are read: the kernel sends up to 1024 (UIO_MAXIOV),
/// and a destination left unread would go unrecorded.
pub fn read_mmsg_names(
    pid: u32,
    addr: u64,
    vlen: u64,
) -> Result<Vec<Map<String, Value>>, Unreadable> {
    /// The kernel's cap on a sendmmsg's messages.
    const UIO_MAXIOV: u64 = 1024;
    /// `struct mmsghdr`: a 56-byte msghdr and a u32, padded to 64.
    const MMSGHDR: usize = 64;
    // vlen is an unsigned int: the register's upper half is not the kernel's.
    let n = u64::from(vlen as u32).min(UIO_MAXIOV) as usize;
    // The headers in one read; then the names they point to.
    let Some(headers) = read_bytes(pid, addr, n * MMSGHDR)? else {
        return Ok(Vec::new());
    };
    let mut names: Vec<Map<String, Value>> = Vec::new();
    for h in headers.chunks_exact(MMSGHDR) {
        let name = u64::from_ne_bytes(h[0..8].try_into().unwrap_or_default());
        let namelen = u32::from_ne_bytes(h[8..12].try_into().unwrap_or_default());
        if name == 0 || namelen == 0 {
            continue;
        }
        if let Some(m) = read_sockaddr(pid, name, u64::from(namelen))?
            && !names.contains(&m)
        {
            names.push(m);
        }
    }
    Ok(names)
}

pub fn socket_type_name(ty: u64) -> &'static str {
    match (ty & 0xf) as i32 {
        libc::SOCK_STREAM => "stream",
        libc::SOCK_DGRAM => "dgram",
        libc::SOCK_RAW => "raw",
        libc::SOCK_SEQPACKET => "seqpacket",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_sockaddr() {
        let mut b = vec![0u8; 16];
        b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&4444u16.to_be_bytes());
        b[4..8].copy_from_slice(&[127, 0, 0, 1]);
        let m = sockaddr(&b);
        assert_eq!(m["family"], "inet");
        assert_eq!(m["address"], "127.0.0.1");
        assert_eq!(m["port"], 4444);
    }

    #[test]
    fn inet6_and_unix_sockaddr() {
        let mut b = vec![0u8; 28];
        b[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&80u16.to_be_bytes());
        b[23] = 1;
        let m = sockaddr(&b);
        assert_eq!(m["address"], "::1");
        assert_eq!(m["port"], 80);

        let mut u = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        u.extend_from_slice(b"/run/x.sock\0");
        assert_eq!(sockaddr(&u)["path"], "/run/x.sock");
        let mut a = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(b"\0hidden");
        assert_eq!(sockaddr(&a)["path"], "@hidden");
        assert_eq!(sockaddr(&[1])["family"], "other");
    }
}
