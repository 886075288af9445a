//! Fuzzes the safetensors header reader: `cargo fuzz run safetensors` (nightly).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = probes::formats::safetensors::sniff(data);
    let _ = probes::formats::safetensors::scan(data, "fuzz.safetensors");
    // The header alone, against any data length.
    if let Some((&len, header)) = data.split_first() {
        let _ = probes::formats::safetensors::scan_header(header, u64::from(len) << 8, "fuzz");
    }
});
