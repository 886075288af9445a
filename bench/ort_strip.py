"""Reference for `make bench`: the STRIP check protocol of `modelvet probe --probes strip` on
onnxruntime (1 thread), to set modelvet's time per checked input against. Per checked input: N
copies, each superimposed on a clean image drawn from POOL.npy (sum-clip: x + y saturating at the
pool's value range, the authors' blend; or alpha 0.5/0.5), one batched run of the N copies,
softmax when the outputs are logits, Shannon entropy in bits over classes per copy, mean over
copies. Only the check is timed (blend, run and entropy), as modelvet's `strip.time_ms.check`,
in wall time and in this process's CPU time. Prints one JSON object on stdout.

Run: python bench/ort_strip.py MODEL.onnx POOL.npy CHECK.npy [--n 100] [--blend sum-clip|alpha]
     [--seed 0] [--threshold BITS]
"""

import argparse
import json
import time

import numpy as np
import onnxruntime as ort

# Same tolerance as modelvet's probes::classifier::PROBABILITY_TOLERANCE.
PROBABILITY_TOLERANCE = 1e-3


def session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def value_range(pool):
    """Where clean values live: min and max of the finite pool values (modelvet's ValueRange)."""
    finite = pool[np.isfinite(pool)]
    if finite.size == 0:
        return np.float32(0.0), np.float32(1.0)
    lo, hi = finite.min(), finite.max()
    if hi <= lo:
        hi = lo + 1
    return np.float32(lo), np.float32(hi)


def probabilities(scores):
    """The scores as probabilities: unchanged when every row already is one, else a stable
    softmax per row; a row with a non-finite score becomes uniform."""
    finite = np.isfinite(scores).all(axis=1)
    if (
        finite.all()
        and (scores >= 0).all()
        and (np.abs(scores.sum(axis=1) - 1) <= PROBABILITY_TOLERANCE).all()
    ):
        return scores
    s = np.where(finite[:, None], scores, 0).astype(np.float32)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    p[~finite] = 1.0 / scores.shape[1]
    return p


def mean_entropy(p):
    """Mean over rows of the Shannon entropy in bits over classes (zero probabilities add 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return float(np.maximum(terms.sum(axis=1), 0.0).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("pool")
    ap.add_argument("check")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--blend", choices=["sum-clip", "alpha"], default="sum-clip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, help="flag entropies under this (modelvet's)")
    args = ap.parse_args()

    sess = session(args.model)
    name = sess.get_inputs()[0].name
    dims = sess.get_inputs()[0].shape[1:]
    pool = np.load(args.pool).astype(np.float32)
    check = np.load(args.check).astype(np.float32)
    pool = pool.reshape(pool.shape[0], -1)
    check = check.reshape(check.shape[0], -1)
    lo, hi = value_range(pool)
    rng = np.random.default_rng(args.seed)
    per = pool.shape[1]
    feed_shape = (args.n, *dims) if all(isinstance(d, int) and d > 0 for d in dims) else (args.n, per)

    # Preallocated buffers: the drawn clean images and the blended batch.
    drawn = np.empty((args.n, per), dtype=np.float32)
    batch = np.empty((args.n, per), dtype=np.float32)
    feed = batch.reshape(feed_shape)

    run_seconds = [0.0]  # time inside onnxruntime, to tell inference from numpy's share

    def entropy_of(x):
        idx = rng.integers(0, pool.shape[0], size=args.n)
        np.take(pool, idx, axis=0, out=drawn)
        if args.blend == "sum-clip":
            np.add(drawn, x, out=batch)
            np.clip(batch, lo, hi, out=batch)
        else:
            np.multiply(drawn, 0.5, out=batch)
            np.add(batch, 0.5 * x, out=batch)
        t = time.perf_counter()
        (scores,) = sess.run(None, {name: feed})[:1]
        run_seconds[0] += time.perf_counter() - t
        return mean_entropy(probabilities(scores.reshape(args.n, -1)))

    entropy_of(check[0])  # warm-up, untimed (modelvet's check runs after its calibration)
    run_seconds[0] = 0.0
    t, cpu = time.perf_counter(), time.process_time()
    entropies = [entropy_of(x) for x in check]
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    out = {
        "onnxruntime": ort.__version__,
        "n": args.n,
        "blend": args.blend,
        "checked": len(entropies),
        "check_ms": elapsed * 1e3,
        "per_checked_input_ms": elapsed * 1e3 / max(len(entropies), 1),
        "run_per_checked_input_ms": run_seconds[0] * 1e3 / max(len(entropies), 1),
        "cpu_per_checked_input_ms": cpu * 1e3 / max(len(entropies), 1),
        "mean_entropy": float(np.mean(entropies)) if entropies else 0.0,
    }
    if args.threshold is not None:
        out["flagged"] = int(sum(h < args.threshold for h in entropies))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
