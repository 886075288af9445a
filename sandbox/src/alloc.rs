//! `Pool`, the memory allocator of the musl build: size classes served from per-thread caches and
//! shared lists, memory taken from the kernel with `mmap` only and kept for reuse when freed.
//!
//! Why not musl's own allocator: mallocng hands memory back to the kernel as soon as a group of
//! blocks empties, so a short run maps and unmaps the same few pages over and over (`modelvet
//! jail -- /bin/true`: 58 `mmap` and 44 `munmap` calls, against 14 and 5 with glibc), and each
//! `munmap` in a process whose other thread runs on another core is a TLB shootdown, an
//! interrupt that exits to the hypervisor on a VM. Why not mimalloc or jemalloc: both read files
//! under `/proc` and `/sys` when they start, and the model host runs under the sandbox's filter,
//! which records every open as the host's own file access. This allocator's only system calls
//! are `mmap`, `munmap` and `mremap`, all in the filter's allow tier.
//!
//! Layout: sizes up to 128 bytes in 16-byte classes, then four classes per doubling.
//! - Small classes (up to 32 KiB) are carved by each thread from 64 KiB spans of shared 2 MiB
//!   chunks, one block as it is needed (nothing is touched ahead), each block aligned to the
//!   largest power of two dividing its class size (at most a page), and cached per thread; a
//!   thread's list of a class holds at most two batches and hands one batch to the shared list
//!   when it overflows, so memory freed on another thread than it was taken on flows back.
//!   A thread that ends keeps its cache (at most two batches of each class, ~128 KiB for the
//!   largest): nothing here runs at thread exit, which would need an allocation to register.
//! - Large classes (up to 64 MiB) get a mapping of their class size each; a freed one is kept on
//!   its class's shared list, up to 64 MiB (and at least two blocks) per class, the rest unmapped.
//! - Larger sizes, and alignments above a page, get a mapping of their own, unmapped when freed
//!   and grown with `mremap`.
//!
//! Every path computes the class from the `Layout` alone, which Rust hands back to `dealloc`, so
//! blocks carry no header. The sandbox's child, started with `CLONE_VM` in this address space,
//! never allocates (see `child`), so no lock here can be held across its start.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::ptr::null_mut;
use std::sync::{Mutex, MutexGuard};

const PAGE: usize = 4096;
/// The largest size served from the per-thread caches.
const SMALL_MAX: usize = 32 << 10;
/// The largest size served by a class (larger ones get a mapping of their own).
const LARGE_MAX: usize = 64 << 20;
/// What small blocks are carved from.
const CHUNK: usize = 2 << 20;
/// Bytes of freed blocks kept per large class (at least two blocks).
const KEEP_LARGE: usize = 64 << 20;
/// What a thread carves new small blocks from, taken from a chunk at a time.
const SPAN: usize = 64 << 10;
/// Bytes a batch of small blocks holds (at least 2, at most 64 blocks).
const BATCH_BYTES: usize = 64 << 10;

const CLASSES: usize = class_index(LARGE_MAX) + 1;
const SMALL_CLASSES: usize = class_index(SMALL_MAX) + 1;

/// The class of `size` (1..=LARGE_MAX): 16-byte steps up to 128, then four steps per doubling.
const fn class_index(size: usize) -> usize {
    if size <= 128 {
        return if size == 0 { 0 } else { size.div_ceil(16) - 1 };
    }
    // 2^b < size <= 2^(b + 1), b >= 7.
    let b = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize;
    8 + (b - 7) * 4 + ((size - 1 - (1 << b)) >> (b - 2))
}

/// The size of the blocks of `class`.
const fn class_size(class: usize) -> usize {
    if class < 8 {
        return (class + 1) * 16;
    }
    let b = (class - 8) / 4 + 7;
    (1 << b) + ((class - 8) % 4 + 1) * (1 << (b - 2))
}

/// The alignment every block of `class` has.
const fn class_align(class: usize) -> usize {
    if class >= SMALL_CLASSES {
        return PAGE;
    }
    let natural = 1 << class_size(class).trailing_zeros();
    if natural < PAGE { natural } else { PAGE }
}

/// How many blocks of a small class move between a thread and the shared list at once.
const fn batch(class: usize) -> usize {
    let n = BATCH_BYTES / class_size(class);
    if n < 2 {
        2
    } else if n > 64 {
        64
    } else {
        n
    }
}

/// Where a layout is served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Class(usize),
    /// Its own mapping.
    Own,
}

fn route(layout: Layout) -> Route {
    if layout.size() > LARGE_MAX || layout.align() > PAGE {
        return Route::Own;
    }
    let mut class = class_index(layout.size());
    // At most three steps: every fourth class is a power of two, aligned to itself (or a page).
    while class_align(class) < layout.align() {
        class += 1;
    }
    Route::Class(class)
}

/// A free block, linked in place.
struct Node {
    /// The next block of the same list (or batch).
    next: *mut Node,
    /// On the first block of a batch in a shared list: the next batch.
    next_batch: *mut Node,
}

/// A class's shared list: batches of small blocks, or single large blocks.
struct Shared {
    head: *mut Node,
    /// Large classes: how many blocks the list holds.
    count: usize,
}

// SAFETY: the pointers are to free blocks that only the list's holder (under its mutex) uses.
unsafe impl Send for Shared {}

/// The chunk spans are cut from.
struct Bump {
    next: usize,
    end: usize,
}

static SHARED: [Mutex<Shared>; CLASSES] = [const {
    Mutex::new(Shared {
        head: null_mut(),
        count: 0,
    })
}; CLASSES];

static BUMP: Mutex<Bump> = Mutex::new(Bump { next: 0, end: 0 });

/// A thread's lists of small blocks, and the span it carves new ones from.
struct Cache {
    head: [Cell<*mut Node>; SMALL_CLASSES],
    len: [Cell<usize>; SMALL_CLASSES],
    span_next: Cell<usize>,
    span_end: Cell<usize>,
}

thread_local! {
    // Const-initialised without `Drop`: no destructor is registered and no access allocates.
    static CACHE: Cache = const {
        Cache {
            head: [const { Cell::new(null_mut()) }; SMALL_CLASSES],
            len: [const { Cell::new(0) }; SMALL_CLASSES],
            span_next: Cell::new(0),
            span_end: Cell::new(0),
        }
    };
}

/// A lock that shrugs off poisoning (nothing here panics while holding one).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fresh anonymous memory of `len` bytes (a multiple of the page), or null.
fn map(len: usize) -> *mut u8 {
    // SAFETY: a new private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        null_mut()
    } else {
        p.cast()
    }
}

/// Gives `len` bytes at `p` (a mapping of ours, or part of one) back to the kernel.
///
/// # Safety
/// Nothing may use the range afterwards.
unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: the caller hands over a range of our own mapping that nothing uses any more.
    unsafe { libc::munmap(p.cast(), len) };
}

const fn page_round(n: usize) -> usize {
    (n + PAGE - 1) & !(PAGE - 1)
}

/// A new span of `len` bytes (a multiple of the page) from the shared chunks, page-aligned; null
/// when the kernel gives no memory.
fn span(len: usize) -> *mut u8 {
    let mut bump = lock(&BUMP);
    if bump.next == 0 || bump.next + len > bump.end {
        let chunk = map(CHUNK);
        if chunk.is_null() {
            return chunk;
        }
        bump.next = chunk as usize;
        bump.end = chunk as usize + CHUNK;
    }
    let at = bump.next;
    bump.next += len;
    at as *mut u8
}

/// Takes `n` blocks off the front of the list at `head`; returns (the rest, the first of them).
///
/// # Safety
/// The list must hold at least `n` blocks.
unsafe fn split_off(head: *mut Node, n: usize) -> (*mut Node, *mut Node) {
    let mut last = head;
    for _ in 1..n {
        // SAFETY: the list holds at least `n` linked free blocks.
        last = unsafe { (*last).next };
    }
    // SAFETY: `last` is the n-th block of the list.
    let rest = unsafe { (*last).next };
    // SAFETY: as above; the batch now ends at `last`.
    unsafe { (*last).next = null_mut() };
    (rest, head)
}

/// A block of small `class` for this thread, or null: from its list, else a batch from the
/// shared list, else carved from its span (only what is handed out is touched).
fn small_alloc(class: usize) -> *mut u8 {
    let size = class_size(class);
    let from_cache = CACHE.try_with(|cache| {
        let mut head = cache.head[class].get();
        if head.is_null() {
            let mut shared = lock(&SHARED[class]);
            head = shared.head;
            if !head.is_null() {
                // SAFETY: a batch on the shared list: its first block holds the next batch.
                shared.head = unsafe { (*head).next_batch };
            }
            drop(shared);
            if head.is_null() {
                let align = class_align(class);
                let mut at = (cache.span_next.get() + align - 1) & !(align - 1);
                if cache.span_next.get() == 0 || at + size > cache.span_end.get() {
                    let fresh = span(SPAN);
                    if fresh.is_null() {
                        return fresh;
                    }
                    at = fresh as usize;
                    cache.span_end.set(at + SPAN);
                }
                cache.span_next.set(at + size);
                return at as *mut u8;
            }
            let mut len = 0;
            let mut p = head;
            while !p.is_null() {
                len += 1;
                // SAFETY: `p` walks a batch of free blocks of ours.
                p = unsafe { (*p).next };
            }
            cache.len[class].set(len);
        }
        // SAFETY: `head` is the first free block of this thread's list.
        cache.head[class].set(unsafe { (*head).next });
        cache.len[class].set(cache.len[class].get() - 1);
        head.cast::<u8>()
    });
    // During the thread's teardown (no cache to use): a span of its own (page-aligned).
    from_cache.unwrap_or_else(|_| span(page_round(size)))
}

/// Returns a block of small `class` to this thread's list, handing a batch to the shared list
/// when the thread holds two.
///
/// # Safety
/// `p` must be a block of `class` that nothing uses any more.
unsafe fn small_free(class: usize, p: *mut u8) {
    let node = p.cast::<Node>();
    let kept = CACHE.try_with(|cache| {
        let n = batch(class);
        let mut head = cache.head[class].get();
        let mut len = cache.len[class].get();
        if len >= 2 * n {
            // SAFETY: the thread's list holds 2n >= n blocks.
            let (rest, full) = unsafe { split_off(head, n) };
            let mut shared = lock(&SHARED[class]);
            // SAFETY: `full` is the first block of a batch nobody else holds.
            unsafe { (*full).next_batch = shared.head };
            shared.head = full;
            drop(shared);
            head = rest;
            len -= n;
        }
        // SAFETY: the caller gives the block up; it becomes the head of this thread's list.
        unsafe {
            node.write(Node {
                next: head,
                next_batch: null_mut(),
            })
        };
        cache.head[class].set(node);
        cache.len[class].set(len + 1);
    });
    if kept.is_err() {
        // During the thread's teardown: a batch of one on the shared list.
        let mut shared = lock(&SHARED[class]);
        // SAFETY: the caller gives the block up.
        unsafe {
            node.write(Node {
                next: null_mut(),
                next_batch: shared.head,
            })
        };
        shared.head = node;
    }
}

/// A block of large `class`, kept or new; the flag says whether it is fresh (zeroed).
fn large_alloc(class: usize) -> (*mut u8, bool) {
    let mut shared = lock(&SHARED[class]);
    let head = shared.head;
    if !head.is_null() {
        // SAFETY: a kept block of ours on the list.
        shared.head = unsafe { (*head).next };
        shared.count -= 1;
        return (head.cast(), false);
    }
    drop(shared);
    (map(class_size(class)), true)
}

/// # Safety
/// `p` must be a block of large `class` that nothing uses any more.
unsafe fn large_free(class: usize, p: *mut u8) {
    let size = class_size(class);
    let mut shared = lock(&SHARED[class]);
    if shared.count < 2 || (shared.count + 1) * size <= KEEP_LARGE {
        let node = p.cast::<Node>();
        // SAFETY: the caller gives the block up; it joins the list.
        unsafe {
            node.write(Node {
                next: shared.head,
                next_batch: null_mut(),
            })
        };
        shared.head = node;
        shared.count += 1;
        return;
    }
    drop(shared);
    // SAFETY: the block is its own mapping of `size` bytes, given up by the caller.
    unsafe { unmap(p, size) };
}

/// A mapping of its own for `layout`, aligned as it asks.
fn own_alloc(layout: Layout) -> *mut u8 {
    let len = page_round(layout.size());
    if layout.align() <= PAGE {
        return map(len);
    }
    // Map enough to find an aligned start, then give back the slack on both sides.
    let Some(total) = len.checked_add(layout.align()) else {
        return null_mut();
    };
    let base = map(total);
    if base.is_null() {
        return base;
    }
    let start = (base as usize + layout.align() - 1) & !(layout.align() - 1);
    let head = start - base as usize;
    if head > 0 {
        // SAFETY: the slack before the aligned start, part of our new mapping, unused.
        unsafe { unmap(base, head) };
    }
    let tail = total - head - len;
    if tail > 0 {
        // SAFETY: the slack after the block, part of our new mapping, unused.
        unsafe { unmap((start + len) as *mut u8, tail) };
    }
    start as *mut u8
}

/// The allocator (see the module's documentation). Install it with `#[global_allocator]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pool;

impl Pool {
    /// A block for `layout` and whether it is fresh from the kernel (so already zero).
    fn alloc_fresh(layout: Layout) -> (*mut u8, bool) {
        match route(layout) {
            Route::Class(class) if class < SMALL_CLASSES => (small_alloc(class), false),
            Route::Class(class) => large_alloc(class),
            Route::Own => (own_alloc(layout), true),
        }
    }
}

// SAFETY: every block handed out is at least `layout.size()` bytes, aligned to `layout.align()`
// (a class's blocks are aligned to `class_align`, which `route` checks; own mappings are page-
// or over-aligned), and belongs to one owner until it comes back through `dealloc` with the same
// layout, which routes it to the same class.
unsafe impl GlobalAlloc for Pool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::alloc_fresh(layout).0
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (p, fresh) = Self::alloc_fresh(layout);
        if !p.is_null() && !fresh {
            // SAFETY: `p` is a block of at least `layout.size()` bytes that we just handed out.
            unsafe { p.write_bytes(0, layout.size()) };
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        match route(layout) {
            // SAFETY: the caller gives back a block `alloc` made for this layout.
            Route::Class(class) if class < SMALL_CLASSES => unsafe { small_free(class, p) },
            // SAFETY: as above.
            Route::Class(class) => unsafe { large_free(class, p) },
            // SAFETY: as above: the block is its own mapping of the page-rounded size.
            Route::Own => unsafe { unmap(p, page_round(layout.size())) },
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return null_mut();
        };
        let (old, new) = (route(layout), route(new_layout));
        if old == new && old != Route::Own {
            // The same class holds both sizes.
            return p;
        }
        if old == Route::Own && new == Route::Own && layout.align() <= PAGE {
            // SAFETY: `p` is its own mapping of the page-rounded old size; the kernel moves or
            // grows it and keeps its content.
            let q = unsafe {
                libc::mremap(
                    p.cast(),
                    page_round(layout.size()),
                    page_round(new_size),
                    libc::MREMAP_MAYMOVE,
                )
            };
            return if q == libc::MAP_FAILED {
                null_mut()
            } else {
                q.cast()
            };
        }
        let q = Self::alloc_fresh(new_layout).0;
        if !q.is_null() {
            // SAFETY: both blocks are ours and distinct; the smaller size fits both.
            unsafe { std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size)) };
            // SAFETY: the old block is given up; it goes back with its own layout.
            unsafe { self.dealloc(p, layout) };
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_size_and_alignment() {
        assert_eq!(class_size(CLASSES - 1), LARGE_MAX);
        assert_eq!(class_size(SMALL_CLASSES - 1), SMALL_MAX);
        for c in 0..CLASSES {
            assert_eq!(class_index(class_size(c)), c, "class {c}");
            if c > 0 {
                assert!(class_size(c) > class_size(c - 1));
                assert_eq!(class_index(class_size(c - 1) + 1), c);
            }
        }
        // No class wastes more than a quarter beyond 128 bytes.
        for size in (129..SMALL_MAX * 4).step_by(7) {
            let c = class_index(size);
            assert!(class_size(c) >= size && class_size(c) * 4 <= size * 5 + 4 * 16);
        }
        for align in [1, 2, 8, 16, 32, 64, 256, 4096] {
            for size in [1, 17, 100, 129, 300, 5000, 40_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                match route(layout) {
                    Route::Class(c) => {
                        assert!(class_size(c) >= size && class_align(c) >= align);
                    }
                    Route::Own => panic!("{size}/{align} has a class"),
                }
            }
        }
    }

    /// Fills each block with a pattern of its own and checks it before freeing, over sizes
    /// from every route and alignments up to twice a page, on four threads that also free
    /// each other's blocks.
    #[test]
    fn blocks_are_aligned_distinct_and_survive_cross_thread_frees() {
        let pool = Pool;
        let sizes = [
            1usize,
            8,
            16,
            24,
            100,
            128,
            200,
            1000,
            4096,
            9000,
            33_000,
            300_000,
            3 << 20,
        ];
        let aligns = [1usize, 16, 64, 4096, 8192];
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Layout, u8)>();
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for round in 0..40u8 {
                        for (i, &size) in sizes.iter().enumerate() {
                            let align = aligns[(i + round as usize) % aligns.len()];
                            let layout = Layout::from_size_align(size, align).unwrap();
                            let zeroed = (i + round as usize).is_multiple_of(3);
                            let p = if zeroed {
                                // SAFETY: a non-zero size.
                                unsafe { pool.alloc_zeroed(layout) }
                            } else {
                                // SAFETY: a non-zero size.
                                unsafe { pool.alloc(layout) }
                            };
                            assert!(!p.is_null());
                            assert_eq!(p as usize % align, 0, "{size}/{align}");
                            if zeroed {
                                // SAFETY: the block holds `size` bytes.
                                let bytes = unsafe { std::slice::from_raw_parts(p, size) };
                                assert!(bytes.iter().all(|&b| b == 0), "{size} not zeroed");
                            }
                            let mark = t.wrapping_mul(41).wrapping_add(round).wrapping_add(i as u8);
                            // SAFETY: the block holds `size` bytes.
                            unsafe { p.write_bytes(mark, size) };
                            held.push((p as usize, layout, mark));
                        }
                        // Hand half to the next thread to free, free the rest here.
                        for (k, block) in std::mem::take(&mut held).into_iter().enumerate() {
                            if k % 2 == 0 {
                                tx.send(block).unwrap();
                            } else {
                                check_and_free(&pool, block);
                            }
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        for block in rx {
            check_and_free(&pool, block);
        }
        for h in handles {
            h.join().unwrap();
        }
    }

    fn check_and_free(pool: &Pool, (p, layout, mark): (usize, Layout, u8)) {
        // SAFETY: a live block of `layout.size()` bytes from `pool`.
        let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, layout.size()) };
        assert!(
            bytes.iter().all(|&b| b == mark),
            "block of {} overwritten",
            layout.size()
        );
        // SAFETY: the block is given back with its own layout.
        unsafe { pool.dealloc(p as *mut u8, layout) };
    }

    #[test]
    fn realloc_keeps_content_across_routes() {
        let pool = Pool;
        let layout = Layout::from_size_align(10, 8).unwrap();
        // SAFETY: a non-zero size.
        let mut p = unsafe { pool.alloc(layout) };
        // SAFETY: the block holds 10 bytes.
        unsafe { p.copy_from_nonoverlapping(b"0123456789".as_ptr(), 10) };
        let mut size = 10;
        for next in [12, 100, 5000, 40_000, 1 << 20, 80 << 20, 100 << 20, 64, 10] {
            let old = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: `p` is live with layout `old`; the new size is non-zero.
            p = unsafe { pool.realloc(p, old, next) };
            assert!(!p.is_null());
            // SAFETY: at least 10 bytes are live.
            let head = unsafe { std::slice::from_raw_parts(p, 10) };
            assert_eq!(head, b"0123456789", "after growing to {next}");
            size = next;
        }
        // SAFETY: the last layout.
        unsafe { pool.dealloc(p, Layout::from_size_align(size, 8).unwrap()) };
    }
}
