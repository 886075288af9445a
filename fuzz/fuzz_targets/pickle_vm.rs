//! Fuzzes the symbolic pickle VM: `cargo fuzz run pickle_vm` (nightly). Any input must end in
//! findings, never a panic, a hang or an allocation driven by a declared length.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = probes::pickle::scan(data, "fuzz.pkl");
    // Behind a PROTO header too, so the mutator reaches the protocol 2-5 opcodes quickly.
    let mut framed = vec![0x80, 4];
    framed.extend_from_slice(data);
    let _ = probes::pickle::scan(&framed, "fuzz.pkl");
});
