//! Fuzzes the ONNX protobuf walker: `cargo fuzz run onnx` (nightly).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = probes::formats::onnx::sniff(data);
    let _ = probes::formats::onnx::scan(data, "fuzz.onnx");
    let _ = probes::formats::onnx::external_paths(data);
});
