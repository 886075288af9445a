"""Reference for `make bench`: onnxruntime throughput (1 thread) on the same rows and batch size
that `modelvet probe --probes validation` sends through the sandbox: one pass over X.npy in
batches of BATCH, timing only the `run` calls (as the probe's `performance.per_second` times
only its inference calls). Prints one JSON object on stdout.

Run: python bench/ort_infer.py MODEL.onnx X.npy [--batch 256] [--warmup 3]
"""

import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def session(model):
    """An onnxruntime session restricted to one thread, all graph optimisations on."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def shaped(sess, x):
    """Reshapes rows to the model's per-sample input shape when the element counts match, as
    modelvet does (e.g. [N, 784] into [N, 1, 28, 28])."""
    dims = sess.get_inputs()[0].shape[1:]
    if all(isinstance(d, int) and d > 0 for d in dims):
        x = x.reshape((x.shape[0], *dims))
    return np.ascontiguousarray(x, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("x")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=3, help="untimed batches before the pass")
    args = ap.parse_args()

    sess = session(args.model)
    x = shaped(sess, np.load(args.x))
    name = sess.get_inputs()[0].name
    n = x.shape[0]
    for i in range(args.warmup):
        start = (i * args.batch) % max(n, 1)
        sess.run(None, {name: x[start : start + args.batch]})

    busy, latencies = 0.0, []
    for start in range(0, n, args.batch):
        batch = x[start : start + args.batch]
        t = time.perf_counter()
        sess.run(None, {name: batch})
        dt = time.perf_counter() - t
        busy += dt
        latencies.append(dt * 1e3)
    latencies.sort()
    print(
        json.dumps(
            {
                "onnxruntime": ort.__version__,
                "inferences": n,
                "batches": len(latencies),
                "per_second": n / busy if busy > 0 else 0.0,
                "latency_ms": {
                    "p50": latencies[len(latencies) // 2] if latencies else 0.0,
                    "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
                    if latencies
                    else 0.0,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
