//! The binary's entry point, before the C library's `_start` (linked with
//! `--entry=modelvet_start` by `build.rs`, x86_64 static-pie only, glibc or musl): it asks for
//! huge pages for the code, and moves the relocated data onto one transparent huge page before
//! the start-up code writes it. Both C libraries' static start-up code then finds an empty
//! DT_RELR table; glibc applies its ifunc relocations and makes the data read-only, and for musl,
//! which does neither, `protect_relro` below makes it read-only first thing in `main`.
//!
//! The code first. `modelvet jail -- /bin/true` runs code from ~90 places spread over 36 MB of
//! rodata and text (its own, std's, clap's and glibc's, and the constructors tract registers
//! its kernels with), each first touch a page fault that maps 64 KiB around it. The read-only
//! segments are marked `MADV_HUGEPAGE`: when their page cache is filled while the mark holds
//! (the first start after the file's pages were evicted, as after a reboot), the kernel reads
//! 2 MiB folios and, the segments being 2 MiB-aligned (build.rs), maps each one whole (12 MB of
//! the text in six huge mappings, `FilePmdMapped` in smaps). Measured with the binary's cache
//! dropped and refilled the same way for both builds, interleaved medians of 300: spawn to exit
//! 4.90 -> 4.67 ms, to the target's first instruction 4.43 -> 4.34 ms. Where the cache was
//! filled otherwise (by the linker's writes, or by a copy) it stays as it is and nothing
//! changes; where THP is off, the mark does nothing. The cost: a first start from disk reads
//! whole 2 MiB blocks of code around what it runs (~25 MB instead of ~5 MB).
//!
//! A block already partly in the page cache in small pages is read in small pages from then on,
//! so what is read before the mark matters. So: the mark is set for the whole image first, from
//! the image's addresses alone, before anything of it is read (reading the program headers
//! faults in the file's first page, and the kernel reads around it: 8 MiB of readahead on this
//! project's VM); this entry sits in an executable segment after the code and the unwind tables
//! (entry.ld; glibc's small `.iplt` stubs share it), so that
//! its first instruction, before the mark, reads no block of the code; the cold unwind tables
//! sit between the code and the writable data, whose last pages the kernel zeroes at exec, with
//! the same read-around; each read-only segment is grown over the file's padding to its 2 MiB
//! boundary (`mremap` in place), so that its last block can be mapped whole too; and the
//! relocated data below is read with forward-only readahead (`MADV_SEQUENTIAL`). Measured with
//! the binary's cache dropped and refilled alike for both builds, interleaved medians of 300:
//! with the entry in its own segment before the code (the previous step) 4.68 -> 4.63 ms to
//! exit, 3.85 -> 3.84 ms to the first instruction; with all of it 4.21 -> 4.08 and 3.25 -> 3.13
//! ms (text in 7 huge mappings, its first block in 64 KiB folios).
//!
//! A static-pie binary relocates itself in `_start`: it adds its load address to ~76,000 pointers
//! (vtables, panic locations and string tables of tract, wasmtime and clap) that sit in ~264
//! pages of its RELRO segment. Each first write to one of those file-backed private pages is a
//! copy-on-write fault that allocates a 4 KiB page and sets one page-table entry, ~1.7 us each on
//! this project's VM (a guest whose page-table writes are paravirtualised): ~0.45 ms of every
//! start and ~0.06 ms more at exit to free them, paid by every `modelvet jail` and by every
//! sandboxed model host. Here the segment's bytes are copied once into an anonymous region
//! backed by one 2 MiB huge page, and `mremap` moves that region over the segment at the same
//! address: one fault, one allocation, and page-table entries moved in bulk. Measured on this
//! VM with the same steps in C over the same 264 pages: 450 -> 183 us, and 69 -> 12 us to unmap.
//!
//! It also applies the packed relative relocations (DT_RELR) itself, to the copy (and the few
//! outside the segment in place), and leaves glibc an empty table (DT_RELRSZ 0 in the copy's
//! dynamic section): glibc's loop walks each 63-bit bitmap word bit by bit, with a branch that
//! mispredicts on about every other bit (~0.2 ms of every start here, the top of a profile of
//! `modelvet --version`); this one visits only the set bits (`bsf`). `modelvet --version`,
//! interleaved medians of 400: 1.33 -> 0.97 ms with both.
//!
//! Nothing about the layout changes: the data keeps its (randomised) address and its content,
//! relocated as glibc would have, and glibc then applies the ifunc relocations and makes the
//! segment read-only (`_dl_protect_relro`) as it would the file-backed pages. Where a step cannot be done (the segment is larger than a huge page, or
//! `mmap` fails) the entry leaves the segment alone; where the host gives no huge page (THP off)
//! the copy falls back to 4 KiB pages, about as dear as the faults it replaces. If `mremap`
//! fails before it touches the destination (a bad argument), the segment is where it was: the
//! relocations already applied outside it are taken back, and glibc relocates the untouched
//! segment as usual. The kernel discards the destination before it moves the pages, so a failure
//! after that (out of memory for the new mapping's bookkeeping) leaves the segment unmapped and
//! the start ends in SIGSEGV: it fails closed, nothing runs. The temporary region is unmapped
//! either way.
//!
//! Where the host's THP `defrag` setting lets a madvised fault compact memory (`madvise`, the
//! kernel's default, or `always`), the first write to the huge page may stall for that on a
//! fragmented host, as any THP user's would; a host without a free 2 MiB block for long may
//! prefer `defer` or `never` for `defrag` (the copy then takes 4 KiB pages).
//!
//! Only for static-pie: a dynamically loaded PIE is relocated by `ld.so` before the entry runs,
//! and moving its RELRO after `ld.so` has protected it would make it writable again.
//!
//! First of all, for `jail`, `probe` and `detonate`, the entry starts their sandbox's network
//! namespace (~0.4-0.6 ms of kernel work, the slowest namespace to make) in a process of its
//! own on the other core, so that it is made while this core relocates the binary and the
//! runtime starts, rather than on a helper thread once `main` runs. A process, not a thread:
//! a thread sharing our memory made every change to our mappings meanwhile (the relocation's
//! moves, the runtime's start) a TLB shootdown to its core, and cost more than it saved
//! (3.46 -> 3.96 ms); and it shares no descriptors, since `main` relies on every descriptor open
//! at its start being the caller's (`-o /dev/fd/N`). It sets its parent-death signal, makes the
//! namespace, and stops; `early_netns` opens the namespace through /proc and kills it, and
//! `reap_early_netns` reaps it once the sandbox's child is cloned. `jail -- /bin/true`,
//! interleaved medians of 250: 3.87 -> 3.68 ms (bwrap 3.74 ms).

use std::sync::atomic::{AtomicI32, Ordering};

#[cfg(all(
    target_arch = "x86_64",
    target_os = "linux",
    target_feature = "crt-static"
))]
core::arch::global_asm!(
    ".pushsection .modelvet_start,\"ax\",@progbits",
    ".globl modelvet_start",
    ".type modelvet_start,@function",
    "modelvet_start:",
    // The kernel enters with rsp at argc and rdx = 0 (no `rtld_fini` for a static binary);
    // `_start` reads both. Keep rdx in r15; rsp is not moved (calls below return to it).
    "mov r15, rdx",
    // A sandboxing command (argv[1] `jail`, `probe` or `detonate`) starts its sandbox's network
    // namespace now, in a process of its own (see `early_netns`): the slowest namespace to make
    // (~0.4-0.6 ms of kernel work), made on the other core while this one relocates the binary
    // and the runtime starts, instead of after `main` has started a helper thread for it.
    "cmp qword ptr [rsp], 2",
    "jb 79f",
    "mov rdi, [rsp + 16]",
    "lea rsi, [rip + modelvet_cmd_jail]",
    "call 85f",
    "je 78f",
    "mov rdi, [rsp + 16]",
    "lea rsi, [rip + modelvet_cmd_probe]",
    "call 85f",
    "je 78f",
    "mov rdi, [rsp + 16]",
    "lea rsi, [rip + modelvet_cmd_detonate]",
    "call 85f",
    "jne 79f",
    "78:",
    // clone(exit signal none): a process of its own, sharing neither our memory (nothing this
    // thread does to its mappings from here on, the moves below and the runtime's start, needs
    // a TLB shootdown to the core it runs on) nor our descriptors (until `main` has taken its
    // copy of a descriptor `-o` names, every open one is the caller's). Without a stack of its
    // own it runs on a copy of ours. It makes the namespace and stops; `early_netns` opens the
    // namespace through /proc and kills it, `reap_early_netns` reaps it. Our pid first, for its
    // check below.
    "mov eax, 39", // getpid
    "syscall",
    "mov r12, rax",
    "mov eax, 56",
    "xor edi, edi",
    "xor esi, esi",
    "xor edx, edx",
    "xor r10d, r10d",
    "xor r8d, r8d",
    "syscall",
    "test rax, rax",
    "jz 80f",
    "jl 79f",
    "mov dword ptr [rip + MODELVET_EARLY_NETNS], eax",
    // Off this core, where there is another: a new task tends to be queued on its creator's
    // core, where it would wait for this thread (or take the core from it) while the other
    // idles. The child moves itself too, in case it runs first.
    "mov rdi, rax",
    "call 89f",
    "79:",
    // Before anything of the image is read: madvise(image start, up to the 2 MiB block of the
    // relocated data, MADV_HUGEPAGE) for every segment at once, from addresses alone (the
    // ranges between segments are not mapped: the call says so and marks the rest). Reading
    // the program headers below faults in the first page of the file, and the kernel reads
    // around it (here the disk's 8 MiB readahead reaches well into the code): with the mark
    // already there, that read comes in 2 MiB folios too.
    "lea rdi, [rip + __ehdr_start]",
    "lea rsi, [rip + _DYNAMIC]",
    "and rsi, -0x200000",
    "sub rsi, rdi",
    "jbe 74f",
    "mov edx, 14",
    "mov eax, 28",
    "syscall",
    "74:",
    // Our ELF header is mapped at the load address (the first, read-only segment): find the
    // PT_GNU_RELRO program header. Position-independent: nothing here reads relocated data.
    "lea r14, [rip + __ehdr_start]",
    "mov rax, [r14 + 32]", // e_phoff
    "lea rsi, [r14 + rax]",
    "movzx ecx, word ptr [r14 + 56]", // e_phnum
    "movzx r8d, word ptr [r14 + 54]", // e_phentsize
    // Each read-only PT_LOAD (the code, the rodata, this entry's): grown to its next 2 MiB
    // boundary where that space is free, so that its last block can be mapped whole too. The
    // grown mapping keeps the huge-page mark set above: where its page cache is filled from now
    // on (a start after the file's pages were evicted, as after a reboot), the kernel reads
    // 2 MiB folios and maps each with one page-table entry (the segments are 2 MiB-aligned in
    // the file and in memory, see build.rs), instead of ~90 faults scattered over 36 MB.
    "mov r12, rsi",
    "mov ebx, ecx",
    "70:",
    "test ebx, ebx",
    "jz 72f",
    "cmp dword ptr [r12], 1", // PT_LOAD
    "jne 71f",
    "test dword ptr [r12 + 4], 2", // PF_W
    "jnz 71f",
    // rbp = first page, rsi = length in pages, rdx = length to the next 2 MiB boundary.
    "mov rbp, [r12 + 16]", // p_vaddr
    "add rbp, r14",
    "mov rsi, [r12 + 40]", // p_memsz
    "add rsi, rbp",
    "add rsi, 4095",
    "and rsi, -4096",
    "and rbp, -4096",
    "sub rsi, rbp",
    "lea rdx, [rbp + rsi + 0x1fffff]",
    "and rdx, -0x200000",
    "sub rdx, rbp",
    "cmp rdx, rsi",
    "je 71f",
    // mremap(rbp, rsi, rdx, 0): the mapping grows over the file's padding up to the boundary,
    // in place or not at all (its result is not needed).
    "mov eax, 25",
    "mov rdi, rbp",
    "xor r10d, r10d",
    "syscall",
    "71:",
    "add r12, r8",
    "dec ebx",
    "jmp 70b",
    "72:",
    "mov rax, [r14 + 32]", // e_phoff again: the calls took rsi and rcx
    "lea rsi, [r14 + rax]",
    "movzx ecx, word ptr [r14 + 56]",
    "2:",
    "test ecx, ecx",
    "jz 9f",
    "cmp dword ptr [rsi], 0x6474e552", // PT_GNU_RELRO
    "je 3f",
    "add rsi, r8",
    "dec ecx",
    "jmp 2b",
    "3:",
    // r12 = first page of the segment, rbx = its length in whole pages.
    "mov r12, [rsi + 16]", // p_vaddr
    "mov rbx, [rsi + 40]", // p_memsz
    "add rbx, r12",
    "add r12, r14",
    "add rbx, r14",
    "and r12, -4096",
    "add rbx, 4095",
    "and rbx, -4096",
    "sub rbx, r12",
    "jz 9f",
    "cmp rbx, 0x200000",
    "ja 9f",
    // rbp = mmap(NULL, 4 MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
    // MAP_NORESERVE, -1, 0): room for one 2 MiB-aligned block whatever the address.
    "mov eax, 9",
    "xor edi, edi",
    "mov esi, 0x400000",
    "mov edx, 3",
    "mov r10d, 0x4022",
    "mov r8, -1",
    "xor r9d, r9d",
    "syscall",
    "cmp rax, -4095",
    "jae 9f",
    "mov rbp, rax",
    // r13 = the aligned block; madvise(r13, 2 MiB, MADV_HUGEPAGE), its result ignored (without
    // THP the copy below takes 4 KiB pages).
    "lea r13, [rax + 0x1fffff]",
    "and r13, -0x200000",
    "mov eax, 28",
    "mov rdi, r13",
    "mov esi, 0x200000",
    "mov edx, 14",
    "syscall",
    // madvise(r12, len, MADV_SEQUENTIAL): the reads below fault the segment's file pages in
    // with readahead forward only. The default read-around would also read the 64 KiB before
    // the segment, the end of the code's last 2 MiB block, into the page cache in 4 KiB pages,
    // and a block partly cached can no longer be read as one huge page.
    "mov eax, 28",
    "mov rdi, r12",
    "mov rsi, rbx",
    "mov edx, 2",
    "syscall",
    // Copy the segment's bytes (as the kernel mapped them: not yet relocated) into the block.
    "mov rdi, r13",
    "mov rsi, r12",
    "mov rcx, rbx",
    "cld",
    "rep movsb",
    // Apply the packed relative relocations (DT_RELR) ourselves: those in the segment to the
    // copy, while it is still one huge page, and the rest in place once the copy is moved in;
    // then glibc finds an empty table (DT_RELRSZ 0 in the copy's dynamic section). glibc's
    // loop walks each bitmap word bit by bit, a mispredicted branch on every other bit (~0.2 ms
    // of every start here for ~78,000 relocations); this one visits the set bits only.
    // [rsp]: the table's start, [rsp+8]: its end, [rsp+16]: the copy's DT_RELRSZ value slot.
    "sub rsp, 32",
    "mov qword ptr [rsp + 16], 0",
    "lea rsi, [rip + _DYNAMIC]",
    "sub rsi, r12",
    "cmp rsi, rbx",
    "jae 50f",
    "add rsi, r13",
    "xor r8d, r8d",   // DT_RELR
    "xor r9d, r9d",   // where DT_RELRSZ's value is, in the copy
    "xor r10d, r10d", // DT_RELRENT
    "10:",
    "mov rax, [rsi]",
    "test rax, rax",
    "jz 14f",
    "cmp rax, 36",
    "jne 11f",
    "mov r8, [rsi + 8]",
    "jmp 13f",
    "11:",
    "cmp rax, 35",
    "jne 12f",
    "lea r9, [rsi + 8]",
    "jmp 13f",
    "12:",
    "cmp rax, 37",
    "jne 13f",
    "mov r10, [rsi + 8]",
    "13:",
    "add rsi, 16",
    "jmp 10b",
    "14:",
    "test r8, r8",
    "jz 50f",
    "test r9, r9",
    "jz 50f",
    "cmp r10, 8",
    "jne 50f",
    "lea rsi, [r14 + r8]",
    "mov [rsp], rsi",
    "mov rcx, [r9]",
    "add rcx, rsi",
    "mov [rsp + 8], rcx",
    "mov [rsp + 16], r9",
    // One pass: relocations inside the segment go to the copy, the few outside it are applied
    // in place at once (taken back, below, should the copy not be moved in).
    "mov r11, r14",
    "call 30f",
    "mov r9, [rsp + 16]",
    "mov qword ptr [r9], 0",
    "50:",
    // mremap(r13, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, r12): the copy replaces the
    // file-backed pages at the segment's own address.
    "mov eax, 25",
    "mov rdi, r13",
    "mov rsi, rbx",
    "mov rdx, rbx",
    "mov r10d, 3",
    "mov r8, r12",
    "syscall",
    // Not moved in: the segment is as the kernel mapped it (its table intact), so glibc will
    // relocate everything; the relocations already applied outside it are taken back first
    // (a second pass that subtracts the load address).
    "cmp rax, r12",
    "je 51f",
    "cmp qword ptr [rsp + 16], 0",
    "je 51f",
    "mov rsi, [rsp]",
    "mov rcx, [rsp + 8]",
    "mov r11, r14",
    "neg r11",
    "call 30f",
    "51:",
    // munmap(rbp, 4 MiB): what is left of the temporary region (all of it if mremap failed).
    "mov eax, 11",
    "mov rdi, rbp",
    "mov esi, 0x400000",
    "syscall",
    "add rsp, 32",
    "9:",
    "mov rdx, r15",
    "jmp _start",
    // One pass over the DT_RELR table [rsi, rcx): an even entry is an address (relocate it, the
    // next word is `where`); an odd entry is a bitmap of the 63 words from `where` (then
    // `where` moves on by 63 words). Relocating a word at runtime address r8 adds r11 to it:
    // in the copy (r13) when it lies in the segment [r12, r12 + rbx), in place otherwise.
    ".macro MODELVET_RELOCATE",
    "mov r10, r8",
    "sub r10, r12",
    "cmp r10, rbx",
    "jae 1f",
    "add [r13 + r10], r11",
    "jmp 2f",
    "1:",
    "add [r8], r11",
    "2:",
    ".endm",
    "30:",
    "xor edi, edi",
    "31:",
    "cmp rsi, rcx",
    "jae 39f",
    "mov rax, [rsi]",
    "add rsi, 8",
    "test al, 1",
    "jnz 33f",
    "lea rdi, [r14 + rax]",
    "mov r8, rdi",
    "MODELVET_RELOCATE",
    "add rdi, 8",
    "jmp 31b",
    "33:",
    "shr rax, 1",
    "34:",
    "test rax, rax",
    "jz 35f",
    "bsf r9, rax",
    "lea r8, [rdi + r9 * 8]",
    "MODELVET_RELOCATE",
    "lea r9, [rax - 1]",
    "and rax, r9",
    "jmp 34b",
    "35:",
    "add rdi, 504",
    "jmp 31b",
    "39:",
    "ret",
    // The network-namespace process (see above): off its creator's core, unshare(CLONE_NEWNET)
    // and stop (exit 1 where it cannot make one).
    "80:",
    // Dies with us: prctl(PR_SET_PDEATHSIG, SIGKILL), then our pid checked (had we died before
    // the prctl, it would be an orphan, stopped for good).
    "mov eax, 157",
    "mov edi, 1",
    "mov esi, 9",
    "syscall",
    "mov eax, 110", // getppid
    "syscall",
    "cmp rax, r12",
    "jne 82f",
    "xor edi, edi",
    "call 89f",
    "mov eax, 272", // unshare(CLONE_NEWNET)
    "mov edi, 0x40000000",
    "syscall",
    "test eax, eax",
    "jnz 82f",
    // Stopped until `early_netns` has the namespace and kills us: kill(getpid(), SIGSTOP).
    "mov eax, 39",
    "syscall",
    "mov edi, eax",
    "mov eax, 62",
    "mov esi, 19",
    "syscall",
    "82:",
    "mov eax, 60", // exit(1): no namespace (or killed before it was taken)
    "mov edi, 1",
    "syscall",
    "ud2",
    // Moves task rdi (0: the caller) off the calling thread's core, where its CPU mask has
    // another: sched_getaffinity into [rsp], 128 bytes; getcpu into [rsp + 128]; that CPU's
    // bit cleared; sched_setaffinity if any is left. Clobbers rax, rcx, rdx, rsi, rdi, r8-r11.
    "89:",
    "push rbx",
    "mov rbx, rdi",
    "sub rsp, 144",
    "mov eax, 204",
    "xor edi, edi",
    "mov esi, 128",
    "mov rdx, rsp",
    "syscall",
    "test rax, rax",
    "jle 76f",
    "mov qword ptr [rsp + 128], -1",
    "mov eax, 309",
    "lea rdi, [rsp + 128]",
    "xor esi, esi",
    "xor edx, edx",
    "syscall",
    "test rax, rax",
    "jnz 76f",
    "mov eax, dword ptr [rsp + 128]",
    "cmp eax, 1024",
    "jae 76f",
    "btr qword ptr [rsp], rax",
    "xor ecx, ecx",
    "xor r8d, r8d",
    "75:",
    "or r8, [rsp + rcx * 8]",
    "inc ecx",
    "cmp ecx, 16",
    "jb 75b",
    "test r8, r8",
    "jz 76f",
    "mov eax, 203",
    "mov rdi, rbx",
    "mov esi, 128",
    "mov rdx, rsp",
    "syscall",
    "76:",
    "add rsp, 144",
    "pop rbx",
    "ret",
    // Compares the NUL-terminated strings at rdi and rsi: ZF set when they are equal.
    "85:",
    "movzx r8d, byte ptr [rdi]",
    "movzx r9d, byte ptr [rsi]",
    "cmp r8d, r9d",
    "jne 86f",
    "test r8d, r8d",
    "jz 86f",
    "inc rdi",
    "inc rsi",
    "jmp 85b",
    "86:",
    "ret",
    ".size modelvet_start, . - modelvet_start",
    ".popsection",
    ".pushsection .rodata.modelvet_start,\"a\",@progbits",
    "modelvet_cmd_jail: .asciz \"jail\"",
    "modelvet_cmd_probe: .asciz \"probe\"",
    "modelvet_cmd_detonate: .asciz \"detonate\"",
    ".popsection",
);

/// The process the entry started to make a sandboxing command's network namespace (see
/// `modelvet_start`): its pid, 0 where none was started (another command, a failed clone, or a
/// build without the entry, where nothing ever sets it). Taken once, by `early_netns`.
#[unsafe(no_mangle)]
static MODELVET_EARLY_NETNS: AtomicI32 = AtomicI32::new(0);

/// The killed namespace process, for `reap_early_netns`.
static MODELVET_EARLY_REAP: AtomicI32 = AtomicI32::new(0);

/// The network namespace the entry started for this sandboxing command: once its process has
/// made it and stopped (waited for if it has not: it takes ~0.4 ms from the start), opened
/// through /proc, and the process killed (`reap_early_netns` reaps it). `None` where none was
/// started or it failed (no CAP_SYS_ADMIN, say: the sandbox then makes its own). Once per
/// process.
pub fn early_netns() -> Option<std::os::fd::OwnedFd> {
    let pid = MODELVET_EARLY_NETNS.swap(0, Ordering::AcqRel);
    if pid <= 0 {
        return None;
    }
    // Stopped (the namespace is made) or gone (it failed). Not reaped yet: WNOWAIT.
    // SAFETY: an all-zero siginfo_t is valid; waitid fills it for our own child.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WSTOPPED | libc::WEXITED | libc::WNOWAIT | libc::__WALL;
    let stopped = loop {
        // SAFETY: waitid on our own child into a local siginfo_t.
        let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
        if r == 0 {
            break info.si_code == libc::CLD_STOPPED;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    };
    let netns = stopped
        .then(|| std::fs::File::open(format!("/proc/{pid}/ns/net")).ok())
        .flatten();
    // SAFETY: kill(2) on our own child, not yet reaped (so its pid is still its own).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // Reaped by `reap_early_netns`, off the spawn's path: its exit takes a while.
    MODELVET_EARLY_REAP.store(pid, Ordering::Release);
    netns.map(std::os::fd::OwnedFd::from)
}

/// Reaps the namespace process `early_netns` killed, if it did.
pub fn reap_early_netns() {
    let pid = MODELVET_EARLY_REAP.swap(0, Ordering::AcqRel);
    if pid > 0 {
        let mut status = 0;
        // SAFETY: wait4 on our own child (exit signal none: __WALL), into a local.
        while unsafe { libc::wait4(pid, &mut status, libc::__WALL, std::ptr::null_mut()) } < 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
    }
}

/// The whole pages of the relocated data (PT_GNU_RELRO), rounded as glibc's
/// `_dl_protect_relro` rounds them; `None` where the program headers cannot be found (no
/// auxiliary vector entry, no PT_PHDR) or the segment holds no whole page.
#[cfg(all(target_os = "linux", target_env = "musl"))]
fn relro_pages() -> Option<(usize, usize)> {
    // SAFETY: getauxval(3) reads the process's auxiliary vector; no memory of ours is passed.
    let phdr = unsafe { libc::getauxval(libc::AT_PHDR) } as usize;
    // SAFETY: as above.
    let phnum = unsafe { libc::getauxval(libc::AT_PHNUM) } as usize;
    if phdr == 0 || phnum == 0 {
        return None;
    }
    // SAFETY: the kernel's AT_PHDR and AT_PHNUM describe our program headers, mapped with the
    // image's first segment for the life of the process.
    let headers = unsafe { std::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum) };
    let own = headers.iter().find(|h| h.p_type == libc::PT_PHDR)?;
    let relro = headers.iter().find(|h| h.p_type == libc::PT_GNU_RELRO)?;
    let base = phdr.wrapping_sub(own.p_vaddr as usize);
    let start = base.wrapping_add(relro.p_vaddr as usize) & !4095;
    let end = base.wrapping_add((relro.p_vaddr + relro.p_memsz) as usize) & !4095;
    (end > start).then_some((start, end))
}

/// Makes the relocated data (PT_GNU_RELRO: vtables, the GOT, the constructor table) read-only,
/// as glibc's start-up does and musl's static start-up does not. Called first thing in `main`:
/// nothing writes that data after the relocation. Where its pages cannot be found it does
/// nothing; a refused `mprotect` ends the process, as glibc ends one whose relocated data it
/// cannot protect.
#[cfg(all(target_os = "linux", target_env = "musl"))]
pub fn protect_relro() {
    let Some((start, end)) = relro_pages() else {
        return;
    };
    // SAFETY: the range is our own relocated data, which nothing writes after start-up.
    let ret = unsafe { libc::mprotect(start as *mut libc::c_void, end - start, libc::PROT_READ) };
    if ret != 0 {
        eprintln!(
            "modelvet: cannot make the relocated data read-only: {}",
            std::io::Error::last_os_error()
        );
        std::process::abort();
    }
}

#[cfg(all(test, target_os = "linux", target_env = "musl"))]
mod tests {
    /// The test binary is a musl static-pie too: after the call its RELRO range is mapped
    /// read-only, and a vtable-bearing static (in that range) still reads.
    #[test]
    fn relocated_data_becomes_read_only() {
        super::protect_relro();
        let (start, _) = super::relro_pages().expect("a RELRO segment");
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let line = maps
            .lines()
            .find(|l| {
                let range = l.split(' ').next().unwrap();
                let (a, b) = range.split_once('-').unwrap();
                let (a, b) = (
                    usize::from_str_radix(a, 16).unwrap(),
                    usize::from_str_radix(b, 16).unwrap(),
                );
                a <= start && start < b
            })
            .unwrap();
        assert!(line.split(' ').nth(1).unwrap().starts_with("r--"), "{line}");
        let boxed: Box<dyn std::fmt::Debug> = Box::new(7);
        assert_eq!(format!("{boxed:?}"), "7");
    }
}
