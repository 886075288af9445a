//! Fuzzes the GGUF reader and the chat-template analyser: `cargo fuzz run gguf` (nightly).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Fuzz bodies behind a valid magic too, so the mutator reaches the metadata quickly.
    let mut framed = b"GGUF".to_vec();
    framed.extend_from_slice(data);
    let _ = probes::formats::gguf::scan(data, "fuzz.gguf");
    let _ = probes::formats::gguf::scan(&framed, "fuzz.gguf");
    if let Ok(template) = std::str::from_utf8(data) {
        let _ = probes::formats::gguf::scan_chat_template(template, "fuzz");
    }
});
