"""Top-10 over 100k items at batch 1: the recommend graph (ONNX Runtime) vs a numpy argpartition baseline.

    .venv/bin/python benchmarks/bench_recommend.py [--items 100000 --users 2000 --factors 32 --seen 50 --calls 2000]

Random factors (the timing does not depend on training; MF, ALS and popularity export the same graph); each user
has seen ``--seen`` items, masked in both. The graph's three outputs (items, scores, basis) are fetched.
Prints p50 / p99 per request side by side (target: p99 <= 5 ms).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=2_000)
    ap.add_argument("--factors", type=int, default=32)
    ap.add_argument("--seen", type=int, default=50)
    ap.add_argument("--calls", type=int, default=2_000)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import onnxruntime as ort

    from fulcrum.tasks.recommend._graph import build_graph, padded_seen

    rng = np.random.default_rng(0)
    D = a.factors + 3
    A = rng.normal(size=(a.users + 1, D)).astype(np.float32)
    B = rng.normal(size=(a.items, D)).astype(np.float32)
    seen = [rng.choice(a.items, a.seen, replace=False) for _ in range(a.users)]
    users = [f"u{i}" for i in range(a.users)]
    g = build_graph(users, [f"i{i}" for i in range(a.items)], A, B, padded_seen(seen, a.items))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(g, opts, providers=["CPUExecutionProvider"])
    Bt = np.ascontiguousarray(B.T)
    item_ids = np.asarray([f"i{i}" for i in range(a.items)], dtype=object)
    k = np.array([10], np.int64)

    def graph(u: int) -> None:
        sess.run(None, {"user": np.array([users[u]], object), "k": k})

    def numpy_ref(u: int) -> None:
        s = A[u] @ Bt
        s[seen[u]] = -np.inf
        part = np.argpartition(-s, 9)[:10]
        top = part[np.argsort(-s[part])]
        item_ids[top], s[top]

    picks = rng.integers(0, a.users, a.calls)
    res = {}
    for name, fn in (("onnx graph", graph), ("numpy argpartition", numpy_ref)):
        for u in picks[:50]:
            fn(int(u))
        t = []
        for u in picks:
            t0 = time.perf_counter()
            fn(int(u))
            t.append((time.perf_counter() - t0) * 1000)
        res[name] = np.percentile(t, [50, 99])
    print(f"top-10 over {a.items:,} items, {a.factors} factors, batch 1, {a.calls} requests, {a.threads} thread(s)")
    print(f"{'':>20} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (p50, p99) in res.items():
        print(f"{name:>20} {p50:8.3f} {p99:8.3f}")
    print(f"graph p99 <= 5 ms: {'yes' if res['onnx graph'][1] <= 5 else 'no'}")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
