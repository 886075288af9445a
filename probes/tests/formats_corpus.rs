//! The safetensors, ONNX, GGUF and Keras readers on the generated corpus
//! (`cargo run --release -p modelvet --example gen_format_corpus` writes it): every hostile file
//! is high or critical, no benign file is; then a deterministic mutation stress test (seeded bit
//! flips, truncations, length-field corruption) over the same files: no panic, no hang, and no
//! allocation much larger than the input (an allocation sized from an untrusted length fails).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use probes::finding::{Finding, Severity};
use probes::formats::{self, Format, gguf, keras, onnx, safetensors};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Records the largest single allocation made while the current thread is armed.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn note(size: usize) {
    if ARMED.with(Cell::get) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged;
// the only addition is a relaxed atomic update, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's: `layout` has non-zero size.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; the caller guarantees `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

const PREFIXES: &[&str] = &["st-", "onnx-", "gguf-", "keras-"];

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/scan")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo run --release -p modelvet --example gen_format_corpus`",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            PREFIXES.iter().any(|pre| name.starts_with(pre))
        })
        .collect();
    files.sort();
    files
}

/// Members of a zip whose entries are stored (method 0), read from the central directory.
/// Enough for the `.keras` files of the corpus; the project's zip reader lives in `scan`.
fn stored_members(data: &[u8]) -> Vec<(String, &[u8])> {
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) as usize;
    let eocd = data.len() - 22;
    assert_eq!(&data[eocd..eocd + 4], b"PK\x05\x06");
    let (count, mut p) = (u16_at(eocd + 10), u32_at(eocd + 16));
    let mut out = Vec::new();
    for _ in 0..count {
        assert_eq!(&data[p..p + 4], b"PK\x01\x02");
        let size = u32_at(p + 20);
        let (name_len, extra, comment) = (u16_at(p + 28), u16_at(p + 30), u16_at(p + 32));
        let local = u32_at(p + 42);
        let name = String::from_utf8_lossy(&data[p + 46..p + 46 + name_len]).into_owned();
        let start = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        out.push((name, &data[start..start + size]));
        p += 46 + name_len + extra + comment;
    }
    out
}

fn scan_file(path: &Path, data: &[u8]) -> (Option<Format>, Vec<Finding>) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    if name.ends_with(".keras") {
        let mut findings = Vec::new();
        for (member, bytes) in stored_members(data) {
            findings.extend(keras::scan_zip_member(
                &member,
                bytes,
                &format!("{name}!{member}"),
            ));
        }
        return (None, findings);
    }
    let format = formats::detect(data);
    (
        format,
        format
            .map(|f| formats::scan(f, data, &name))
            .unwrap_or_default(),
    )
}

#[test]
fn hostile_files_are_high_or_critical_and_benign_files_are_not() {
    let hostile = corpus("hostile");
    let benign = corpus("benign");
    assert!(
        hostile.len() >= 15,
        "only {} hostile format files",
        hostile.len()
    );
    assert!(
        benign.len() >= 6,
        "only {} benign format files",
        benign.len()
    );
    for path in &hostile {
        let data = std::fs::read(path).unwrap();
        let (_, findings) = scan_file(path, &data);
        let worst = findings.iter().map(|f| f.severity).max();
        assert!(
            worst >= Some(Severity::High),
            "{}: {findings:?}",
            path.display()
        );
    }
    for path in &benign {
        let data = std::fs::read(path).unwrap();
        let (format, findings) = scan_file(path, &data);
        let name = path.file_name().unwrap().to_string_lossy();
        if !name.ends_with(".keras") {
            assert!(format.is_some(), "{name} not recognised");
        }
        let worst = findings.iter().map(|f| f.severity).max();
        assert!(worst < Some(Severity::High), "{name}: {findings:?}");
    }
    // Content routing, not names: each benign file is detected as its own format.
    for (name, expected) in [
        ("st-mlp-f32-bf16-i64.safetensors", Format::Safetensors),
        ("onnx-mlp.onnx", Format::Onnx),
        ("gguf-chatml.gguf", Format::Gguf),
        ("keras-legacy-dense.h5", Format::KerasH5),
    ] {
        let path = benign.iter().find(|p| p.ends_with(name)).expect(name);
        assert_eq!(
            formats::detect(&std::fs::read(path).unwrap()),
            Some(expected),
            "{name}"
        );
    }
}

/// Runs every reader on `data` (whatever its format: the readers must also survive the wrong
/// input), timing each and recording the largest allocation.
fn run_all(data: &[u8]) -> Duration {
    ARMED.with(|a| a.set(true));
    let start = Instant::now();
    let _ = safetensors::scan(data, "m");
    let _ = onnx::scan(data, "m");
    let _ = onnx::external_paths(data);
    let _ = gguf::scan(data, "m");
    let _ = keras::scan(data, "m");
    let _ = keras::scan_zip_member("config.json", data, "m");
    let _ = gguf::scan_chat_template(&String::from_utf8_lossy(data), "m");
    let _ = formats::detect(data);
    let took = start.elapsed();
    ARMED.with(|a| a.set(false));
    took
}

/// Values that break naive length handling.
const HOSTILE_LENGTHS: &[u64] = &[
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    1 << 62,
    u64::MAX,
];

fn mutate(rng: &mut ChaCha8Rng, original: &[u8]) -> Vec<u8> {
    let mut data = original.to_vec();
    if data.is_empty() {
        return data;
    }
    match rng.gen_range(0..5) {
        0 => {
            for _ in 0..rng.gen_range(1..=8) {
                let i = rng.gen_range(0..data.len());
                data[i] ^= 1 << rng.gen_range(0..8);
            }
        }
        1 => data.truncate(rng.gen_range(0..data.len())),
        2 => {
            // Length-field corruption: an 8- or 4-byte little-endian or varint-sized value.
            let v = HOSTILE_LENGTHS[rng.gen_range(0..HOSTILE_LENGTHS.len())];
            let width = [1usize, 2, 4, 8][rng.gen_range(0..4)];
            let i = rng.gen_range(0..data.len());
            for (k, b) in v.to_le_bytes().iter().take(width).enumerate() {
                if let Some(slot) = data.get_mut(i + k) {
                    *slot = *b;
                }
            }
        }
        3 => {
            // Varint bombs and bytes inserted mid-structure.
            let i = rng.gen_range(0..data.len());
            let insert: Vec<u8> = if rng.gen_bool(0.5) {
                vec![0xff; rng.gen_range(1..12)]
            } else {
                vec![b'{'; rng.gen_range(1..64)]
            };
            data.splice(i..i, insert);
        }
        _ => {
            let (a, b) = (rng.gen_range(0..data.len()), rng.gen_range(0..data.len()));
            let (a, b) = (a.min(b), a.max(b));
            data.drain(a..b.min(a + 64));
        }
    }
    data
}

#[test]
fn mutated_corpus_never_panics_hangs_or_over_allocates() {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for path in corpus("hostile").into_iter().chain(corpus("benign")) {
        let data = std::fs::read(&path).unwrap();
        if path.extension().is_some_and(|e| e == "keras") {
            for (_, member) in stored_members(&data) {
                inputs.push(member.to_vec());
            }
        }
        inputs.push(data);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x5ca1_ab1e);
    let iterations = 4000;
    let mut slowest = Duration::ZERO;
    let mut largest_seen = 0;
    for n in 0..iterations {
        let original = &inputs[n % inputs.len()];
        let data = mutate(&mut rng, original);
        LARGEST.store(0, Ordering::Relaxed);
        let took = run_all(&data);
        slowest = slowest.max(took);
        let largest = LARGEST.load(Ordering::Relaxed);
        // Findings, evidence strings and the lossy copy for the template pass scale with the
        // input; nothing may scale with a length field the input merely claims.
        largest_seen = largest_seen.max(largest);
        let bound = 4 * data.len() + (1 << 20);
        assert!(
            largest <= bound,
            "iteration {n}: allocation of {largest} bytes for a {}-byte input",
            data.len()
        );
        assert!(took < Duration::from_secs(2), "iteration {n}: {took:?}");
    }
    assert!(largest_seen > 0, "the allocation tracker saw nothing");
    eprintln!(
        "{iterations} mutated inputs, slowest full pass {slowest:?}, largest allocation {largest_seen} bytes"
    );
}
