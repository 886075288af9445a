//! The binary's entry point, before glibc's `_start` (linked with `--entry=modelvet_start` by
//! `build.rs`, x86_64 static-pie only): it moves the relocated data onto one transparent huge
//! page before the start-up code writes it.
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
//! Nothing about the layout changes: the data keeps its (randomised) address and its content,
//! and glibc then relocates it and makes it read-only (`_dl_protect_relro`) as it would the
//! file-backed pages. Where a step cannot be done (the segment is larger than a huge page, or
//! `mmap` fails) the entry leaves the segment alone; where the host gives no huge page (THP off)
//! the copy falls back to 4 KiB pages, about as dear as the faults it replaces. If `mremap`
//! fails, the kernel has left the segment where it was (it only discards the destination once
//! the move can be made), and the temporary region is unmapped either way.
//!
//! Only for static-pie: a dynamically loaded PIE is relocated by `ld.so` before the entry runs,
//! and moving its RELRO after `ld.so` has protected it would make it writable again.

#[cfg(all(
    target_arch = "x86_64",
    target_os = "linux",
    target_feature = "crt-static"
))]
core::arch::global_asm!(
    ".pushsection .text.modelvet_start,\"ax\",@progbits",
    ".globl modelvet_start",
    ".type modelvet_start,@function",
    "modelvet_start:",
    // The kernel enters with rsp at argc and rdx = 0 (no `rtld_fini` for a static binary);
    // `_start` reads both. Keep rdx in r15; rsp is not moved.
    "mov r15, rdx",
    // Our ELF header is mapped at the load address (the first, read-only segment): find the
    // PT_GNU_RELRO program header. Position-independent: nothing here reads relocated data.
    "lea r14, [rip + __ehdr_start]",
    "mov rax, [r14 + 32]", // e_phoff
    "lea rsi, [r14 + rax]",
    "movzx ecx, word ptr [r14 + 56]", // e_phnum
    "movzx r8d, word ptr [r14 + 54]", // e_phentsize
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
    // Copy the segment's bytes (as the kernel mapped them: not yet relocated) into the block.
    "mov rdi, r13",
    "mov rsi, r12",
    "mov rcx, rbx",
    "cld",
    "rep movsb",
    // mremap(r13, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, r12): the copy replaces the
    // file-backed pages at the segment's own address.
    "mov eax, 25",
    "mov rdi, r13",
    "mov rsi, rbx",
    "mov rdx, rbx",
    "mov r10d, 3",
    "mov r8, r12",
    "syscall",
    // munmap(rbp, 4 MiB): what is left of the temporary region (all of it if mremap failed).
    "mov eax, 11",
    "mov rdi, rbp",
    "mov esi, 0x400000",
    "syscall",
    "9:",
    "mov rdx, r15",
    "jmp _start",
    ".size modelvet_start, . - modelvet_start",
    ".popsection",
);
