#!/usr/bin/env python3
"""Writes fuzz/seeds/channel/: valid host-to-supervisor transcripts of the model-host channel
(runner/src/host/channel.rs: u32 LE length, u8 kind, JSON control or raw LE f32 payload), so the
channel fuzz target starts past the greeting. Run: python3 fuzz/seeds/gen_channel_seeds.py"""
import json
import os
import struct

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "channel")
os.makedirs(here, exist_ok=True)


def frame(kind, payload):
    return struct.pack("<IB", len(payload), kind) + payload


def ctl(message):
    return frame(1, json.dumps(message).encode())


def tensor(values):
    return frame(2, b"".join(struct.pack("<f", v) for v in values))


hello = ctl({"type": "hello", "model": {"format": "onnx",
             "inputs": [{"name": "x", "shape": ["N", 4], "dtype": "f32"}],
             "outputs": [{"name": "y", "shape": ["N", 2], "dtype": "f32"}]}, "events": []})
output = ctl({"type": "output", "shape": [3, 2], "events": [
    {"import": "clock_time_get", "args": {"id": 1}, "result": 0}]}) + tensor([0.1, 0.9, 0.5, 0.5, 1.0, 0.0])
error = ctl({"type": "error", "message": "boom", "kind": "runtime", "events": []})
bye = ctl({"type": "bye"})
seeds = {
    "transcript": hello + output * 4 + bye,
    "error_mid": hello + output + error + output * 2 + bye,
    "load_error": ctl({"type": "load_error", "message": "bad model"}),
    "short_tensor": hello + ctl({"type": "output", "shape": [3, 2], "events": []}) + tensor([1.0]),
}
for name, data in seeds.items():
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
