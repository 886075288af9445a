//! A program that misbehaves in every way the jail must contain; the jail's integration tests
//! run it under `modelvet jail`. Run: `cargo run --release --example hostile -- <case> [arg]`.
//! Cases: connect PORT, udp PORT, connect6 PORT, exec, write PATH, shadow, forkbomb, membomb,
//! busy, killparent, raw, clearpdeath [SECONDS], threadexec SECONDS, flood N, nrwalk N, int80,
//! mmsg PATH [N], unixconnect DIR NAME, hidden, renameparent DIR NAME, reopen PATH,
//! execflood N LEN, unconfined, quota, execat; and, run outside the jail, addkey DESC (puts a key
//! described DESC in the caller's user keyring for two minutes).

use std::io::Write;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `n` fresh private anonymous pages, readable and writable.
fn fresh_pages(n: usize) -> *mut libc::c_void {
    // SAFETY: a new anonymous mapping; no pointer argument of ours.
    unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            n * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map(String::as_str).unwrap_or("");
    let arg = args.get(2).cloned().unwrap_or_default();
    match case {
        "connect" => {
            let r = std::net::TcpStream::connect(("127.0.0.1", arg.parse::<u16>().unwrap_or(1)));
            println!("connect: {:?}", r.map(|_| "connected"));
        }
        "connect6" => {
            let r = std::net::TcpStream::connect(("::1", arg.parse::<u16>().unwrap_or(1)));
            println!("connect6: {:?}", r.map(|_| "connected"));
        }
        "udp" => {
            let r = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
                s.send_to(
                    b"exfiltrate",
                    ("127.0.0.1", arg.parse::<u16>().unwrap_or(1)),
                )
            });
            println!("udp: {r:?}");
        }
        "exec" => {
            let r = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg("echo pwned")
                .status();
            println!("exec: {r:?}");
        }
        "write" => {
            let r = std::fs::File::create(&arg).and_then(|mut f| f.write_all(b"owned"));
            println!("write: {r:?}");
        }
        "shadow" => {
            let r = std::fs::read_to_string("/etc/shadow");
            println!("shadow: {:?}", r.map(|s| s.len()));
        }
        "forkbomb" => loop {
            // SAFETY: fork in a single-threaded program; both sides just loop.
            unsafe { libc::fork() };
        },
        "membomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 << 20]);
            }
        }
        "busy" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        #[allow(clippy::multiple_unsafe_ops_per_block)] // a hostile demo, not sandbox code
        "killparent" => {
            // SAFETY: plain signal sends; the point is that they reach nothing outside.
            let (a, b) = unsafe {
                (
                    libc::kill(libc::getppid(), libc::SIGKILL),
                    libc::kill(-1, libc::SIGKILL),
                )
            };
            println!("killparent: survived ({a}, {b})");
        }
        #[allow(clippy::multiple_unsafe_ops_per_block)] // a hostile demo, not sandbox code
        "raw" => {
            // Each through a raw syscall, so no libc wrapper short-cuts it.
            // SAFETY: the calls are expected to fail with EPERM; arguments are harmless.
            let calls: [(&str, i64); 6] = unsafe {
                [
                    (
                        "ptrace",
                        libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0),
                    ),
                    (
                        "mount",
                        libc::syscall(
                            libc::SYS_mount,
                            c"none".as_ptr(),
                            c"/tmp".as_ptr(),
                            c"tmpfs".as_ptr(),
                            0,
                            0,
                        ),
                    ),
                    (
                        "unshare",
                        libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER),
                    ),
                    ("bpf", libc::syscall(libc::SYS_bpf, 0, 0, 0)),
                    (
                        "io_uring_setup",
                        libc::syscall(libc::SYS_io_uring_setup, 8, std::ptr::null_mut::<u8>()),
                    ),
                    ("keyctl", libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0)),
                ]
            };
            for (name, r) in calls {
                println!("raw {name}: {r} errno {}", if r < 0 { errno() } else { 0 });
            }
        }
        "clearpdeath" => {
            // Drop the signal that would end us with our supervisor, then outlive it. First with
            // junk in the option's upper half (the kernel reads an int), then plainly.
            let option = (1u64 << 32) | libc::PR_SET_PDEATHSIG as u64;
            // SAFETY: a raw prctl with integer arguments only.
            let r = unsafe { libc::syscall(libc::SYS_prctl, option, 0, 0, 0, 0) };
            println!(
                "clearpdeath high: {r} errno {}",
                if r < 0 { errno() } else { 0 }
            );
            // SAFETY: prctl with integer arguments only.
            let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
            println!("clearpdeath: {r} errno {}", if r < 0 { errno() } else { 0 });
            let _ = std::io::stdout().flush();
            std::thread::sleep(std::time::Duration::from_secs(arg.parse().unwrap_or(0)));
        }
        "flood" => {
            // Bury what follows under harmless events, past the report's limit.
            for _ in 0..arg.parse::<usize>().unwrap_or(10_000) {
                let _ = std::fs::File::open("/dev/null");
            }
            // SAFETY: a raw ptrace with integer arguments, expected to fail with EPERM.
            let ptrace = unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) };
            let shadow = std::fs::read_to_string("/etc/shadow").is_ok();
            let connect = std::net::TcpStream::connect(("127.0.0.1", 9)).is_ok();
            let exec = std::process::Command::new("/bin/sh")
                .args(["-c", "true"])
                .status()
                .is_ok();
            println!("flood: ptrace {ptrace} shadow {shadow} connect {connect} exec {exec}");
        }
        "nrwalk" => {
            // Syscall numbers no kernel has, one after another: each a new name to count.
            let n = arg.parse::<i64>().unwrap_or(1000);
            for nr in 1000..1000 + n {
                // SAFETY: numbers past the syscall table: the kernel (or the filter) refuses them.
                unsafe { libc::syscall(nr, 0, 0, 0) };
            }
            println!("nrwalk: {n} numbers");
        }
        "mmsg" => {
            // N datagrams (default 2) in one sendmmsg: all but the last unaddressed, to the peer
            // of a socketpair; the last addressed to the host socket at PATH.
            let mut pair = [0; 2];
            // SAFETY: socketpair(2) into a two-int array.
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, pair.as_mut_ptr()) };
            // SAFETY: sockaddr_un is plain data; zero is a valid value.
            let mut to: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            to.sun_family = libc::AF_UNIX as u16;
            for (d, b) in to.sun_path.iter_mut().zip(arg.bytes().take(107)) {
                *d = b as libc::c_char;
            }
            let n: usize = args
                .get(3)
                .and_then(|v| v.parse().ok())
                .unwrap_or(2)
                .clamp(1, 1024);
            let (peer, host) = (*b"to the peer", *b"to the host");
            let mut iov: Vec<libc::iovec> = (0..n)
                .map(|i| {
                    let p = if i + 1 == n { &host } else { &peer };
                    libc::iovec {
                        iov_base: p.as_ptr() as *mut libc::c_void,
                        iov_len: p.len(),
                    }
                })
                .collect();
            // SAFETY: mmsghdr is plain data; zero is a valid value.
            let mut msgs: Vec<libc::mmsghdr> =
                (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
            for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
            }
            msgs[n - 1].msg_hdr.msg_name = (&raw mut to).cast();
            msgs[n - 1].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as u32;
            // The raw call: musl's sendmmsg on 64-bit hosts sends each message with its own sendmsg.
            // SAFETY: n initialised mmsghdr whose pointers outlive the call.
            let r = unsafe {
                libc::syscall(libc::SYS_sendmmsg, pair[0], msgs.as_mut_ptr(), n as u32, 0)
            };
            println!("mmsg: {r}");
        }
        "unixconnect" => {
            // A host socket at DIR/NAME, spelled three ways the raw path does not show: relative
            // to the working directory, through /proc/self/cwd, and through a link in scratch.
            let name = args.get(3).cloned().unwrap_or_default();
            let _ = std::env::set_current_dir(&arg);
            let link = "/tmp/innocent.sock";
            let _ = std::os::unix::fs::symlink(format!("{arg}/{name}"), link);
            // Two more: `..` after a link to DIR (the kernel climbs from DIR, a lexical reading
            // from the link's folder), and a file named like an abstract socket ("@...").
            let _ = std::fs::create_dir_all("/tmp/x");
            let _ = std::os::unix::fs::symlink(&arg, "/tmp/x/l");
            let base = std::path::Path::new(&arg)
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = std::os::unix::fs::symlink(format!("{arg}/{name}"), "/tmp/@evil");
            for path in [
                name.clone(),
                format!("/proc/self/cwd/{name}"),
                link.to_string(),
                format!("/tmp/x/l/../{base}/{name}"),
            ] {
                let r = std::os::unix::net::UnixStream::connect(&path);
                println!(
                    "unixconnect {path}: {}",
                    if r.is_ok() { "connected" } else { "failed" }
                );
            }
            // A length with its upper half set: the kernel takes the int (the path alone, no
            // NUL), a reader of all 64 bits the bytes after it too (`/../../../tmp/x`, the
            // scratch).
            let real = format!("{arg}/{name}");
            // SAFETY: a zeroed sockaddr_un is valid; the path fits (checked).
            let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let bytes = format!("{real}/../../../tmp/x").into_bytes();
            if bytes.len() < sa.sun_path.len() {
                for (d, b) in sa.sun_path.iter_mut().zip(&bytes) {
                    *d = *b as libc::c_char;
                }
                let len = (1u64 << 32) | (2 + real.len()) as u64;
                // SAFETY: socket(2) takes no pointer.
                let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
                // SAFETY: sa outlives the call; the kernel reads `len as int` bytes of it.
                let r = unsafe { libc::syscall(libc::SYS_connect, fd, &sa, len) };
                println!(
                    "unixconnect long length: {}",
                    if r == 0 { "connected" } else { "failed" }
                );
            }
            // The "@..." file, by a relative name: written as an abstract socket would print.
            let _ = std::env::set_current_dir("/tmp");
            let r = std::os::unix::net::UnixStream::connect("@evil");
            println!(
                "unixconnect @evil: {}",
                if r.is_ok() { "connected" } else { "failed" }
            );
            let _ = std::env::set_current_dir(&arg);
            // Not a host's: a socket of its own (bound in DIR), an abstract one (in the
            // sandbox's own network namespace).
            let _ = std::os::unix::net::UnixListener::bind(format!("{arg}/own.sock"));
            use std::os::linux::net::SocketAddrExt;
            if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(b"modelvet-own") {
                let _ = std::os::unix::net::UnixStream::connect_addr(&addr);
            }
        }
        "execflood" => {
            // Many denied execs, each naming a long path (and passing it again as four
            // arguments): each is an event whose strings the supervisor holds.
            let n = arg.parse::<usize>().unwrap_or(10_000);
            let len = args
                .get(3)
                .and_then(|a| a.parse::<usize>().ok())
                .unwrap_or(4000);
            let mut denied = 0;
            for i in 0..n {
                let path = format!("/nonexistent/{i:08}/{}", "x".repeat(len));
                let c = std::ffi::CString::new(path).unwrap_or_default();
                let argv = [
                    c.as_ptr(),
                    c.as_ptr(),
                    c.as_ptr(),
                    c.as_ptr(),
                    std::ptr::null(),
                ];
                let envp = [std::ptr::null::<libc::c_char>()];
                // SAFETY: execve with a NUL-terminated path and NULL-terminated argv and envp
                // arrays that outlive the call; it is denied (or fails), so it returns.
                if unsafe { libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr()) } < 0 {
                    denied += 1;
                }
            }
            println!("execflood: {denied} of {n} refused");
        }
        "unconfined" => {
            // Sockets a network namespace does not confine: vsock (the hypervisor's port space)
            // and the kernel's device-event netlink.
            for (name, family, kind, protocol) in [
                ("vsock", libc::AF_VSOCK, libc::SOCK_STREAM, 0),
                (
                    "uevent",
                    libc::AF_NETLINK,
                    libc::SOCK_RAW,
                    libc::NETLINK_KOBJECT_UEVENT,
                ),
            ] {
                // SAFETY: socket(2) with integer arguments.
                let fd = unsafe { libc::socket(family, kind, protocol) };
                let e = if fd < 0 { errno() } else { 0 };
                println!("unconfined {name}: fd {fd} errno {e}");
            }
        }
        "quota" => {
            // Per-user kernel quotas the caller's uid shares with the sandbox: inotify instances
            // and queued signals, taken until the kernel refuses.
            let mut instances = 0;
            // SAFETY: inotify_init1 with a flag; the descriptors stay open until exit.
            while instances < 100_000 && unsafe { libc::inotify_init1(libc::IN_CLOEXEC) } >= 0 {
                instances += 1;
            }
            extern "C" fn ignore(_: libc::c_int) {}
            let sig = libc::SIGRTMIN();
            #[allow(clippy::multiple_unsafe_ops_per_block)] // a hostile demo, not sandbox code
            // SAFETY: a handler that does nothing (pid 1 drops signals left at their default),
            // then the signal blocked so that every one sent stays queued.
            unsafe {
                libc::signal(
                    sig,
                    ignore as extern "C" fn(libc::c_int) as libc::sighandler_t,
                );
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, sig);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            }
            // siginfo: si_signo, si_errno, si_code (SI_QUEUE), the rest zero.
            let mut info = [0i32; 32];
            info[0] = sig;
            info[2] = -1;
            let mut queued = 0;
            let me = std::process::id();
            // SAFETY: rt_sigqueueinfo to ourselves with a 128-byte siginfo.
            let send =
                || unsafe { libc::syscall(libc::SYS_rt_sigqueueinfo, me, sig, info.as_ptr()) };
            while queued < 200_000 && send() == 0 {
                queued += 1;
            }
            // Locked memory (SHM_LOCK counts against the caller's uid): the limit it was given.
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit fills our struct.
            unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
            println!(
                "quota: inotify {instances} signals {queued} memlock {}",
                lim.rlim_max
            );
        }
        "execat" => {
            // execveat by descriptor: a memfd holding a copy of /bin/true (AT_EMPTY_PATH), then a
            // bare name below a folder's descriptor; then execve of the memfd by its /proc name.
            let code = std::fs::read("/bin/true").unwrap_or_default();
            let argv = [c"payload".as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null::<libc::c_char>()];
            // SAFETY: memfd_create with a NUL-terminated name.
            let memfd = unsafe { libc::memfd_create(c"payload".as_ptr(), 0) };
            assert!(memfd >= 0, "memfd_create: errno {}", errno());
            // SAFETY: a fresh descriptor of ours, owned by the file from here on.
            let owned =
                unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(memfd) };
            let mut f = std::fs::File::from(owned);
            let _ = f.write_all(&code);
            let dir = std::fs::File::open("/usr/bin").map(std::os::fd::IntoRawFd::into_raw_fd);
            for (fd, name) in [(memfd, c""), (dir.unwrap_or(-1), c"true")] {
                // SAFETY: execveat with NUL-terminated name and NULL-terminated argv and envp
                // arrays that outlive the call; denied, so it returns.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_execveat,
                        fd,
                        name.as_ptr(),
                        argv.as_ptr(),
                        envp.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                };
                println!("execat: {r} errno {}", errno());
            }
            // And the memfd by its /proc name, as execve.
            let by_name =
                std::ffi::CString::new(format!("/proc/self/fd/{memfd}")).unwrap_or_default();
            // SAFETY: as above, with a NUL-terminated path.
            let r = unsafe { libc::execve(by_name.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            println!("execat: {r} errno {}", errno());
        }
        "addkey" => {
            // A key of the caller's own, for the test that the jailed program cannot list it.
            let desc = std::ffi::CString::new(arg).unwrap_or_default();
            #[allow(clippy::multiple_unsafe_ops_per_block)] // a hostile demo, not sandbox code
            // SAFETY: add_key with NUL-terminated type and description and a 6-byte payload;
            // keyctl(KEYCTL_SET_TIMEOUT) on the id it returned.
            let (id, timeout) = unsafe {
                let id = libc::syscall(
                    libc::SYS_add_key,
                    c"user".as_ptr(),
                    desc.as_ptr(),
                    c"secret".as_ptr(),
                    6usize,
                    libc::KEY_SPEC_USER_KEYRING,
                );
                let t = if id < 0 {
                    -1
                } else {
                    libc::syscall(libc::SYS_keyctl, libc::KEYCTL_SET_TIMEOUT, id, 120)
                };
                (id, t)
            };
            if id < 0 || timeout < 0 {
                eprintln!("addkey: errno {}", errno());
                std::process::exit(1);
            }
            println!("addkey: {id}");
        }
        "reopen" => {
            // PATH is a host file shown read-only: opened for reading, then reopened for writing
            // by its descriptor's name (the record once judged those names, not the file), and
            // by openat2 inside its folder as a root (RESOLVE_IN_ROOT: "/name" is that file).
            use std::os::fd::AsRawFd;
            let f = std::fs::File::open(&arg);
            let fd = f.as_ref().map_or(-1, |f| f.as_raw_fd());
            for name in [format!("/proc/self/fd/{fd}"), format!("/dev/fd/{fd}")] {
                let r = std::fs::OpenOptions::new().write(true).open(&name);
                println!(
                    "reopen {name}: errno {}",
                    r.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
                );
            }
            let p = std::path::Path::new(&arg);
            let dir = std::fs::File::open(p.parent().unwrap_or(p));
            let dfd = dir.as_ref().map_or(-1, |d| d.as_raw_fd());
            let inner = format!("/{}\0", p.file_name().unwrap_or_default().to_string_lossy());
            // struct open_how: flags, mode, resolve (RESOLVE_IN_ROOT = 0x10).
            let how: [u64; 3] = [libc::O_WRONLY as u64, 0, 0x10];
            // SAFETY: a NUL-terminated path and an open_how of the size passed, both ours.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    dfd,
                    inner.as_ptr(),
                    how.as_ptr(),
                    std::mem::size_of_val(&how),
                )
            };
            println!(
                "reopen in root: {r} errno {}",
                if r < 0 { errno() } else { 0 }
            );
        }
        "renameparent" => {
            // DIR is bound; its parent, made in the scratch to hold it, renamed would carry the
            // bind (and any host socket in it) to a path the record does not know as the host's.
            let dir = std::path::Path::new(&arg);
            let name = args.get(3).cloned().unwrap_or_default();
            let parent = dir.parent().unwrap_or(dir);
            let base = dir.file_name().unwrap_or_default().to_string_lossy();
            let moved = std::path::Path::new("/tmp/moved-away");
            let r = std::fs::rename(parent, moved);
            println!(
                "renameparent rename: errno {}",
                r.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
            );
            for path in [moved.join(&*base).join(&name), dir.join(&name)] {
                let r = std::os::unix::net::UnixStream::connect(&path);
                println!(
                    "renameparent {}: {}",
                    path.display(),
                    if r.is_ok() { "connected" } else { "failed" }
                );
            }
        }
        "int80" => {
            // A syscall through the i386 ABI (getpid, 20 there), which a filter written for the
            // x86_64 numbers alone would misread.
            #[cfg(target_arch = "x86_64")]
            {
                let r: i64;
                // SAFETY: int 0x80 with eax = 20 (i386 getpid) reads and writes no memory; the
                // registers the entry may change are declared.
                unsafe {
                    std::arch::asm!(
                        "int 0x80",
                        inlateout("rax") 20i64 => r,
                        out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                        options(nostack)
                    )
                };
                println!("int80: {r}");
            }
            #[cfg(not(target_arch = "x86_64"))]
            println!("int80: not x86_64");
        }
        "hidden" => {
            // Arguments where the supervisor cannot read them: memory of memfd_secret (which the
            // kernel reads for the call, but no other process can), and, the same to a reader
            // outside, a pointer to nothing mapped.
            let say = |what: &str, r: i64| {
                println!(
                    "hidden {what}: {r} errno {}",
                    if r < 0 { errno() } else { 0 }
                );
            };
            // SAFETY: a raw syscall with no pointer argument.
            say("memfd_secret", unsafe {
                libc::syscall(libc::SYS_memfd_secret, 0)
            });
            let nowhere = 0x10 as *const libc::c_char;
            // SAFETY: socket(2) takes no pointer.
            let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
            // SAFETY: the bad pointer is only handed to the kernel, which checks it.
            say(
                "connect",
                i64::from(unsafe { libc::connect(fd, nowhere.cast(), 110) }),
            );
            // SAFETY: as above.
            say("open", unsafe { open_raw(nowhere) });
            say(
                "sendto",
                // SAFETY: as above.
                unsafe { libc::sendto(fd, c"x".as_ptr().cast(), 1, 0, nowhere.cast(), 16) } as i64,
            );
            let argv = [std::ptr::null::<libc::c_char>()];
            // SAFETY: as above; argv is a valid NULL-terminated array.
            say(
                "exec",
                i64::from(unsafe { libc::execv(nowhere, argv.as_ptr()) }),
            );
            // Not hidden: a path whose NUL is the last byte before an unmapped page.
            let two = fresh_pages(2).cast::<u8>();
            // SAFETY: the second of our two pages goes; nothing refers to it.
            unsafe { libc::munmap(two.wrapping_add(4096).cast(), 4096) };
            let name = b"/nonexistent-edge\0";
            let edge = two.wrapping_add(4096 - name.len());
            // SAFETY: the string fits the first page, which is ours and writable.
            unsafe { std::ptr::copy_nonoverlapping(name.as_ptr(), edge, name.len()) };
            // SAFETY: a NUL-terminated string in our memory.
            say("edge open", unsafe { open_raw(edge.cast()) });
            // A page made execute-only: process_vm_readv honours the missing read permission,
            // while on x86 the kernel's own copy still reads it.
            let page = fresh_pages(1);
            // SAFETY: the page is ours, writable and 4096 bytes long.
            unsafe { std::ptr::copy_nonoverlapping(c"/etc/shadow".as_ptr(), page.cast(), 12) };
            // SAFETY: the page is ours; after this only the kernel reads it.
            unsafe { libc::mprotect(page, 4096, libc::PROT_EXEC) };
            // SAFETY: the kernel checks the pointer.
            say("xonly open", unsafe { open_raw(page.cast()) });
        }
        "threadexec" => {
            // Exec from a second thread: the thread becomes the main thread of the new program,
            // and a thread has no parent-death signal, so the program would outlive a killed
            // supervisor. Then stay, as a program that got away would.
            let secs = arg.clone();
            let r = std::thread::spawn(move || {
                let prog = c"/bin/sleep";
                let secs = std::ffi::CString::new(secs).unwrap_or_default();
                let argv = [prog.as_ptr(), secs.as_ptr(), std::ptr::null()];
                // SAFETY: NUL-terminated strings and a NULL-terminated argv that outlive the call.
                unsafe { libc::execv(prog.as_ptr(), argv.as_ptr()) };
                errno()
            })
            .join();
            println!("threadexec: errno {}", r.unwrap_or(0));
            let _ = std::io::stdout().flush();
            std::thread::sleep(std::time::Duration::from_secs_f64(
                arg.parse().unwrap_or(0.0),
            ));
        }
        _ => {
            eprintln!(
                "usage: hostile connect|udp|connect6 PORT | exec | write PATH | shadow | forkbomb | membomb | busy | killparent | raw | clearpdeath [SECONDS] | threadexec SECONDS | flood N | nrwalk N | int80 | mmsg PATH [N] | unixconnect DIR NAME | hidden | renameparent DIR NAME | reopen PATH | execflood N LEN | unconfined | quota | execat | addkey DESC"
            );
            std::process::exit(2);
        }
    }
}

/// openat(2) itself, whatever the C library's `open` makes of it (musl's is open(2) on x86_64).
///
/// # Safety
/// `path` is only handed to the kernel, which checks it.
unsafe fn open_raw(path: *const libc::c_char) -> i64 {
    // SAFETY: the kernel checks the pointer; no memory of ours is written.
    unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path, libc::O_RDONLY, 0) }
}
