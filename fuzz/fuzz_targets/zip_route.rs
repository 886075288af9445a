//! Fuzzes the content router and its containers (zip, tar, gzip/zlib, npy, joblib):
//! `cargo fuzz run zip_route` (nightly). Inputs are also wrapped in a local zip header so the
//! mutator reaches the central-directory and member paths quickly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = probes::scan::scan_bytes("fuzz.bin", data);
    let mut framed = b"PK\x03\x04".to_vec();
    framed.extend_from_slice(data);
    let _ = probes::scan::scan_bytes("fuzz.zip", &framed);
});
