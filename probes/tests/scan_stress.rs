//! Deterministic mutation stress of the pickle VM and the content router, standing in for
//! `cargo fuzz` where no nightly toolchain exists: seeded bit flips, truncations, splices and
//! length-field smashes over the scan corpus. Every input must end in a `FileScan` (no panic)
//! within a time bound.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Iterations over the corpus; each scans one mutated file through both entry points.
/// `MODELVET_STRESS_ITERATIONS` raises it for a long run.
const ITERATIONS: usize = 4000;
/// No single input may take longer than this (the corpus files are small).
const PER_INPUT: Duration = Duration::from_secs(2);

fn corpus() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/scan");
    let mut out = Vec::new();
    for kind in ["hostile", "benign"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind)) else {
            continue;
        };
        let mut entries: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if ["pkl-", "zip-", "tar-", "npy-", "joblib-"]
                .iter()
                .any(|x| name.starts_with(x))
                && let Ok(data) = std::fs::read(&p)
            {
                out.push((name, data));
            }
        }
    }
    out
}

fn mutate(rng: &mut ChaCha8Rng, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = a.to_vec();
    match rng.gen_range(0..6) {
        0 => {
            for _ in 0..rng.gen_range(1..8) {
                if v.is_empty() {
                    break;
                }
                let i = rng.gen_range(0..v.len());
                v[i] ^= 1 << rng.gen_range(0..8);
            }
        }
        1 => {
            let n = rng.gen_range(0..=v.len());
            v.truncate(n);
        }
        2 => {
            let cut = rng.gen_range(0..=v.len());
            let from = rng.gen_range(0..=b.len());
            v.truncate(cut);
            v.extend_from_slice(&b[from..]);
        }
        3 => {
            // Smash what may be a length field with a huge or boundary value.
            if v.len() >= 8 {
                let i = rng.gen_range(0..v.len() - 8);
                let vals: [u64; 5] = [
                    u64::MAX,
                    0x7fff_ffff,
                    0xffff_ffff,
                    1 << 40,
                    v.len() as u64 + 1,
                ];
                let x = vals[rng.gen_range(0..vals.len())];
                v[i..i + 8].copy_from_slice(&x.to_le_bytes());
            }
        }
        4 => {
            // Repeat a chunk: deep nesting, long mark runs.
            if !v.is_empty() {
                let s = rng.gen_range(0..v.len());
                let e = (s + rng.gen_range(1..16)).min(v.len());
                let chunk = v[s..e].to_vec();
                for _ in 0..rng.gen_range(1..200) {
                    v.splice(s..s, chunk.iter().copied());
                }
            }
        }
        _ => {
            let i = rng.gen_range(0..=v.len());
            let ops: &[u8] = &[
                0x95, 0x93, b'R', b'(', b'b', 0x81, 0x92, b'c', 0x8c, b'h', b'q', b'.', 0x80,
            ];
            v.insert(i, ops[rng.gen_range(0..ops.len())]);
        }
    }
    v
}

#[test]
fn mutated_corpus_never_panics_or_hangs() {
    let files = corpus();
    assert!(
        files.len() >= 50,
        "corpus missing: run `cargo run --release --example gen_scan_corpus`"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(0x5ca9_2026);
    let iterations = std::env::var("MODELVET_STRESS_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ITERATIONS);
    let started = Instant::now();
    for it in 0..iterations {
        let (name, a) = &files[rng.gen_range(0..files.len())];
        let (_, b) = &files[rng.gen_range(0..files.len())];
        let input = mutate(&mut rng, a, b);
        let t = Instant::now();
        let scan = probes::scan::scan_bytes(name, &input);
        let _ = probes::pickle::scan(&input, name);
        let took = t.elapsed();
        assert!(took < PER_INPUT, "iteration {it} on {name}: {took:?}");
        assert_eq!(scan.sha256.len(), 64);
    }
    assert!(started.elapsed() < Duration::from_secs(120) || iterations > ITERATIONS);
}

/// Bounds that a crafted input hits on purpose are findings (regression guard for the bounds).
#[test]
fn bombs_are_findings() {
    // 3 million MARKs: the mark stack bound, not memory exhaustion.
    let marks = [vec![0x80, 2], vec![b'('; 3_000_000]].concat();
    let s = probes::scan::scan_bytes("marks.pkl", &marks);
    assert!(
        s.findings.iter().any(|f| f.rule == "pickle.limit-exceeded"),
        "{:?}",
        s.findings
    );
    // A BINBYTES8 declaring 2^60 bytes: a truncation error, no allocation.
    let mut big = vec![0x80, 4, 0x8e];
    big.extend((1u64 << 60).to_le_bytes());
    let s = probes::scan::scan_bytes("big.pkl", &big);
    assert!(s.findings.iter().all(|f| f.rule != "pickle.unsafe-global"));
    // A deflate bomb member: 200 MiB of zeros in a few hundred KiB.
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..200 {
        e.write_all(&zeros).expect("in-memory");
    }
    let packed = e.finish().expect("in-memory");
    let zip = one_member_zip("bomb.bin", &packed, 200 << 20);
    let s = probes::scan::scan_bytes("bomb.zip", &zip);
    assert!(
        s.findings.iter().any(|f| f.rule == "archive.bomb"),
        "{:?}",
        s.findings
    );
}

fn one_member_zip(name: &str, packed: &[u8], size: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(b"PK\x03\x04");
    out.extend([20, 0, 0, 0, 8, 0, 0, 0, 0x21, 0, 0, 0, 0, 0]);
    out.extend((packed.len() as u32).to_le_bytes());
    out.extend(size.to_le_bytes());
    out.extend((name.len() as u16).to_le_bytes());
    out.extend([0, 0]);
    out.extend(name.as_bytes());
    out.extend(packed);
    let cd = out.len() as u32;
    out.extend(b"PK\x01\x02");
    out.extend([20, 0, 20, 0, 0, 0, 8, 0, 0, 0, 0x21, 0, 0, 0, 0, 0]);
    out.extend((packed.len() as u32).to_le_bytes());
    out.extend(size.to_le_bytes());
    out.extend((name.len() as u16).to_le_bytes());
    out.extend([0; 12]);
    out.extend(0u32.to_le_bytes());
    out.extend(name.as_bytes());
    let cd_len = out.len() as u32 - cd;
    out.extend(b"PK\x05\x06");
    out.extend([0, 0, 0, 0, 1, 0, 1, 0]);
    out.extend(cd_len.to_le_bytes());
    out.extend(cd.to_le_bytes());
    out.extend([0, 0]);
    out
}
