//! Fuzzes the supervisor's side of the model-host channel with what a hostile host could send:
//! arbitrary bytes on the socket, then a hang-up. The client must answer with an error or a
//! value, never panic, hang or allocate what a length prefix merely claims:
//! `bash fuzz/run_stable.sh channel 60`.
#![no_main]

#[allow(dead_code)]
#[path = "../../runner/src/host/shared.rs"]
mod shared;
#[allow(dead_code)]
#[path = "../../runner/src/host/channel.rs"]
mod channel;

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Within one socket buffer, so the write below never waits for a reader.
    let data = &data[..data.len().min(64 << 10)];
    let (mut host, ours) = UnixStream::pair().unwrap();
    let _ = host.write_all(data);
    let _ = host.shutdown(Shutdown::Write);
    let Ok((mut client, _model)) = channel::HostClient::connect(ours, Duration::from_millis(200))
    else {
        return;
    };
    let x = [0.5f32; 12];
    let shape = [3usize, 4];
    let _ = client.infer_pipelined((0..3).map(|_| (&x[..], &shape[..])), |_, _| true);
    let _ = client.infer(&x, &shape);
    let _ = client.close();
    // `host` stays open until here, so our requests land in its buffer instead of a SIGPIPE.
    drop(host);
});
