#!/usr/bin/env python3
"""STRIP reference in Python on onnxruntime (one thread): the protocol modelvet's
probes/src/strip.rs runs, for `make bench` to set against it on the same model and inputs.

Per checked input: N copies, each superimposed on a clean image drawn from the pool (sum-clip:
plain sum saturating at the top of the clean range), ONE batched session.run, softmax when the
output is logits, mean over copies of the per-copy Shannon entropy (log2) over classes.

Usage: strip_onnxruntime.py MODEL.onnx POOL.npy CHECK.npy [--n 100] [--limit 200] [--seed 0]
Prints one JSON line: {"model", "n", "checked", "ms_per_input", "mean_entropy"}.
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("pool")
    ap.add_argument("check")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blend", choices=["sum-clip", "alpha"], default="sum-clip")
    a = ap.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    tail = [d for d in inp.shape[1:]]

    pool = np.load(a.pool).astype(np.float32)
    check = np.load(a.check).astype(np.float32)[: a.limit]
    lo, hi = float(pool.min()), float(pool.max())
    rng = np.random.default_rng(a.seed)
    feed_shape = [a.n] + tail

    def entropy_of(x):
        idx = rng.integers(0, len(pool), size=a.n)
        if a.blend == "sum-clip":
            batch = np.clip(x[None, :] + pool[idx], lo, hi)
        else:
            batch = 0.5 * x[None, :] + 0.5 * pool[idx]
        out = sess.run(None, {inp.name: batch.reshape(feed_shape)})[0]
        rows_sum = out.sum(axis=1)
        if not ((out >= 0).all() and np.allclose(rows_sum, 1.0, atol=1e-3)):
            out = out - out.max(axis=1, keepdims=True)
            out = np.exp(out)
            out /= out.sum(axis=1, keepdims=True)
        p = np.where(out > 0, out, 1.0)
        return float((-(out * np.log2(p)).sum(axis=1)).mean())

    entropy_of(check[0])  # warm-up
    t0 = time.perf_counter()
    hs = [entropy_of(x) for x in check]
    dt = time.perf_counter() - t0
    print(json.dumps({
        "model": a.model,
        "n": a.n,
        "checked": len(check),
        "ms_per_input": dt * 1e3 / max(len(check), 1),
        "mean_entropy": float(np.mean(hs)),
    }))


if __name__ == "__main__":
    main()
