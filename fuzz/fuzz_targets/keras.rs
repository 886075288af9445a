//! Fuzzes the Keras config walker and the `.h5` config search: `cargo fuzz run keras` (nightly)
//! or `fuzz/run_stable.sh keras`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = probes::formats::keras::sniff(data);
    let _ = probes::formats::keras::scan(data, "fuzz.h5");
    let _ = probes::formats::keras::scan_zip_member("config.json", data, "fuzz.keras!config.json");
});
