//! `memcpy` for the x86_64 musl build, in place of musl's. musl's copies everything of 8 bytes
//! or more with `rep movsq`, whose start-up (~30 cycles) dominates the many small copies Rust
//! code makes: 24% of `modelvet scan`'s CPU on the benchmark corpus went to it. This one copies
//! up to 256 bytes with overlapping unaligned loads and stores, all of the source read before the
//! destination is written for up to 32 bytes, and larger sizes with `rep movsb` (fast strings).
//!
//! The static link takes it over libc.a's: the linker only pulls an archive member for a symbol
//! still undefined, and `__memcpy_fwd` (the name musl's `memmove` jumps to when a forward copy is
//! safe) is defined here too, so musl's `memcpy.o` is never pulled. That forward use is safe
//! here: every path reads each 16- or 32-byte piece before writing it and moves forward, and the
//! tail is read before anything is written.

#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "musl"))]
core::arch::global_asm!(
    ".pushsection .text.modelvet_memcpy,\"ax\",@progbits",
    ".globl memcpy",
    ".type memcpy,@function",
    ".globl __memcpy_fwd",
    ".type __memcpy_fwd,@function",
    "memcpy:",
    "__memcpy_fwd:",
    "mov rax, rdi",
    "cmp rdx, 16",
    "jb 20f",
    "cmp rdx, 32",
    "ja 10f",
    // 16..=32 bytes: two overlapping 16-byte pieces.
    "movups xmm0, [rsi]",
    "movups xmm1, [rsi + rdx - 16]",
    "movups [rdi], xmm0",
    "movups [rdi + rdx - 16], xmm1",
    "ret",
    "10:",
    "cmp rdx, 256",
    "ja 30f",
    // 33..=256 bytes: the last 32 read first, then 32 at a time from the start while more than
    // 32 remain, then the last 32 written.
    "movups xmm2, [rsi + rdx - 32]",
    "movups xmm3, [rsi + rdx - 16]",
    "xor ecx, ecx",
    "11:",
    "movups xmm0, [rsi + rcx]",
    "movups xmm1, [rsi + rcx + 16]",
    "movups [rdi + rcx], xmm0",
    "movups [rdi + rcx + 16], xmm1",
    "add rcx, 32",
    "lea r8, [rcx + 32]",
    "cmp r8, rdx",
    "jb 11b",
    "movups [rdi + rdx - 32], xmm2",
    "movups [rdi + rdx - 16], xmm3",
    "ret",
    "20:",
    // 0..=15 bytes.
    "cmp edx, 8",
    "jb 21f",
    "mov rcx, [rsi]",
    "mov r8, [rsi + rdx - 8]",
    "mov [rdi], rcx",
    "mov [rdi + rdx - 8], r8",
    "ret",
    "21:",
    "cmp edx, 4",
    "jb 22f",
    "mov ecx, [rsi]",
    "mov r8d, [rsi + rdx - 4]",
    "mov [rdi], ecx",
    "mov [rdi + rdx - 4], r8d",
    "ret",
    "22:",
    "test edx, edx",
    "jz 23f",
    "movzx ecx, byte ptr [rsi]",
    "cmp edx, 2",
    "jb 24f",
    "movzx r8d, word ptr [rsi + rdx - 2]",
    "mov [rdi + rdx - 2], r8w",
    "24:",
    "mov [rdi], cl",
    "23:",
    "ret",
    "30:",
    // Larger: fast strings.
    "mov rcx, rdx",
    "rep movsb",
    "ret",
    ".size memcpy, . - memcpy",
    ".size __memcpy_fwd, . - __memcpy_fwd",
    ".popsection",
);

#[cfg(all(test, target_arch = "x86_64", target_os = "linux", target_env = "musl"))]
mod tests {
    unsafe extern "C" {
        fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
        fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
    }

    /// Every size to 600 at every alignment offset to 16, against a byte loop; the bytes around
    /// the destination stay untouched; and musl's memmove, which jumps here for forward copies,
    /// still moves overlapping ranges both ways.
    #[test]
    fn copies_every_size_and_offset_exactly() {
        let src: Vec<u8> = (0..700u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..600 {
            for off in 0..16 {
                let mut dst = vec![0xAAu8; 700];
                // SAFETY: both ranges lie within their buffers (off + n < 700) and are distinct.
                let r = unsafe {
                    memcpy(
                        dst.as_mut_ptr().wrapping_add(off),
                        src.as_ptr().wrapping_add(15 - off),
                        n,
                    )
                };
                assert_eq!(r, dst.as_mut_ptr().wrapping_add(off));
                assert_eq!(
                    &dst[off..off + n],
                    &src[15 - off..15 - off + n],
                    "n {n} off {off}"
                );
                assert!(
                    dst[..off].iter().all(|&b| b == 0xAA),
                    "before, n {n} off {off}"
                );
                assert!(
                    dst[off + n..].iter().all(|&b| b == 0xAA),
                    "after, n {n} off {off}"
                );
            }
        }
        for n in [1usize, 7, 16, 31, 33, 100, 255, 257, 4000] {
            for shift in [1usize, 3, 8, 17, 40] {
                let orig: Vec<u8> = (0..n + shift).map(|i| (i * 13 + 1) as u8).collect();
                let mut buf = orig.clone();
                // SAFETY: both ranges lie within `buf`; memmove allows overlap.
                unsafe { memmove(buf.as_mut_ptr(), buf.as_ptr().wrapping_add(shift), n) };
                assert_eq!(
                    &buf[..n],
                    &orig[shift..shift + n],
                    "down n {n} shift {shift}"
                );
                let mut buf = orig.clone();
                // SAFETY: as above.
                unsafe { memmove(buf.as_mut_ptr().wrapping_add(shift), buf.as_ptr(), n) };
                assert_eq!(&buf[shift..shift + n], &orig[..n], "up n {n} shift {shift}");
            }
        }
    }
}
