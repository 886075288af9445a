//! Link the `modelvet` binary with packed relative relocations (DT_RELR) where the C library
//! loads them (glibc 2.36 and later). The binary carries ~76,000 relative relocations (vtables
//! and string tables of tract, wasmtime and clap); as RELA entries they are a 1.8 MB table the
//! loader reads on every start, as RELR about 17 KB. Measured with hyperfine: `modelvet
//! --version` 3.5 -> 3.1 ms, which every `jail` pays. A binary linked this way refuses to start on
//! an older glibc, so the flag is only used when the glibc it is built against can load it.

use std::process::Command;

/// First glibc release that applies DT_RELR relocations.
const RELR_GLIBC: (u32, u32) = (2, 36);

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    let native = std::env::var("HOST") == std::env::var("TARGET");
    if linux_gnu && native && glibc_version().is_some_and(|v| v >= RELR_GLIBC) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    // The entry that moves the relocated data onto a huge page before `_start` (src/start.rs):
    // static-pie on x86_64 only, the one build where `_start` relocates the binary itself.
    // musl targets link statically by default, and cargo does not list `crt-static` for them.
    let linux_musl = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("musl");
    let static_pie = linux_musl
        || std::env::var("CARGO_CFG_TARGET_FEATURE")
            .is_ok_and(|f| f.split(',').any(|f| f == "crt-static"));
    if (linux_gnu || linux_musl)
        && static_pie
        && std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64")
    {
        if linux_musl {
            musl_link_args();
        }
        println!("cargo:rustc-link-arg-bin=modelvet=-Wl,--entry=modelvet_start");
        // Each segment starts on a 2 MiB boundary, in the file and in memory, so that the
        // kernel can map the text's 2 MiB page-cache folios whole (see start.rs: ~90 page
        // faults over 36 MB become a few huge-page mappings; `jail -- /bin/true` 4.90 -> 4.67
        // ms). The file grows by the padding (~5 MB). The kernel then loads the binary at a
        // 2 MiB-aligned address, which Linux 6.x already does for a mapping this large (its
        // base was 2 MiB-aligned here before): no randomness of the base is lost there; an
        // older kernel would keep 19 of its 28 random bits.
        println!("cargo:rustc-link-arg-bin=modelvet=-Wl,-z,max-page-size=2097152");
        println!("cargo:rustc-link-arg-bin=modelvet=-Wl,-z,separate-loadable-segments");
        // What goes after the code: the unwind tables and the entry (entry.ld says why).
        let script = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
            .join("entry.ld");
        println!("cargo:rerun-if-changed=entry.ld");
        println!(
            "cargo:rustc-link-arg-bin=modelvet=-Wl,-T,{}",
            script.display()
        );
    }
}

/// The musl target links through the C compiler with the system's GNU ld, which has no
/// `-z separate-loadable-segments`: link with the toolchain's own lld instead, as the gnu target
/// does, and with packed relative relocations (musl applies them from 1.2.4 on; the toolchain
/// ships 1.2.5, and the entry applies them itself in any case).
fn musl_link_args() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    println!("cargo:rustc-link-arg-bin=modelvet=-B{sysroot}/lib/rustlib/{host}/bin/gcc-ld");
    println!("cargo:rustc-link-arg-bin=modelvet=-fuse-ld=lld");
    println!("cargo:rustc-link-arg-bin=modelvet=-Wl,-z,pack-relative-relocs");
}

/// The build machine's glibc version, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn glibc_version() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
