"""Inference speed: Fulcrum's Predictor (ONNX Runtime, one graph) vs what a user would run otherwise.

(a) single-row latency, tabular MLP on penguins: ``Predictor.predict_one(row)`` vs the
    torch model called eagerly with its preprocessing (``Preprocessor.transform`` on a
    one-row DataFrame + module forward). Target (issue 3): >= 5x faster at p50.
(b) batch throughput, 1,000 rows per call (penguins upsampled), end to end from a
    DataFrame to labels + probabilities: ``Predictor.predict(df)`` vs scikit-learn
    ColumnTransformer preprocessing + torch eager forward of the same MLP architecture.
    Target: >= 2x rows/s.

Both sides run in the same process, interleaved in rounds (A B A B ...) so machine
noise hits both; torch and ORT get the same thread count (physical cores, or --threads;
on a shared, busy machine --threads 1 is steadier: torch's thread pool suffers most
when cores are taken).

    python benchmarks/bench_inference.py [--calls 2000] [--batches 200] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

import fulcrum
from fulcrum.data import Preprocessor
from fulcrum.runtime._engines import physical_cores


def percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples) * 1e6  # microseconds
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)), "p99": float(np.percentile(arr, 99))}


def interleaved(fns: dict[str, Callable[[], Any]], calls: int, rounds: int = 10) -> dict[str, list[float]]:
    """Time each fn ``calls`` times, alternating between them in ``rounds`` blocks."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    per = max(1, calls // rounds)
    for fn in fns.values():  # warm-up
        for _ in range(20):
            fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000, help="single-row calls per side")
    ap.add_argument("--batches", type=int, default=200, help="1,000-row batches per side")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None, help="threads for both torch and ORT (default: physical cores)")
    args = ap.parse_args()

    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    df = fulcrum.read_table("builtin:penguins")
    target = "species"
    features = df.drop(columns=target)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pkg = fulcrum.train(df, target=target, model="mlp", name="penguins", registry=tmp, progress=False, epochs=args.epochs)
        print(f"trained penguins MLP in {time.perf_counter() - t0:.1f}s; parity onnx vs native on test: "
              f"{pkg.manifest['onnx']['parity']['max_abs_diff']:.2e}; threads: {threads}")
        predictor = fulcrum.load(str(pkg.path), threads=threads)  # engine auto -> onnx
        native = fulcrum.load(str(pkg.path), engine="native")
        assert predictor.engine == "onnx"

        # ---------------------------------------------------------------- (a) single row
        pre = Preprocessor.from_dict(pkg.read_json("preprocess.json"))
        module = native.adapter.torch_module()
        rows = features.sample(200, random_state=0).to_dict("records")
        k = [0]

        def next_row() -> dict[str, Any]:
            k[0] = (k[0] + 1) % len(rows)
            return rows[k[0]]

        def eager_torch() -> Any:
            X = pre.transform(pd.DataFrame([next_row()]))
            with torch.inference_mode():
                return module(torch.as_tensor(X))

        sess = predictor._onnx.session
        feeds = predictor._encoder.encode_row(rows[0])

        fns = {
            "fulcrum predict_one (onnx)": lambda: predictor.predict_one(next_row()),
            "torch eager + Preprocessor": eager_torch,
            "fulcrum predict_one (native)": lambda: native.predict_one(next_row()),
            "bare ort session.run (no checks)": lambda: sess.run(["probabilities"], feeds),
        }
        lat = {k_: percentiles(v) for k_, v in interleaved(fns, args.calls).items()}
        print("\n(a) single-row latency, microseconds")
        print(f"{'':36s} {'p50':>9s} {'p95':>9s} {'p99':>9s}")
        for name, p in lat.items():
            print(f"{name:36s} {p['p50']:9.1f} {p['p95']:9.1f} {p['p99']:9.1f}")
        base, ours = lat["torch eager + Preprocessor"], lat["fulcrum predict_one (onnx)"]
        ratio_a = base["p50"] / ours["p50"]
        print(f"speed-up vs torch eager + preprocessing: p50 {ratio_a:.1f}x, p95 {base['p95'] / ours['p95']:.1f}x, "
              f"p99 {base['p99'] / ours['p99']:.1f}x (target >= 5x)")

        # ---------------------------------------------------------------- (b) 1,000-row batches
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        from fulcrum.models import MLP, InferenceHead

        num_cols = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])]
        cat_cols = [c for c in features.columns if c not in num_cols]
        ct = ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), num_cols),
            ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>"),
                                  OneHotEncoder(handle_unknown="ignore", sparse_output=False)), cat_cols),
        ])
        ct.fit(features)
        d = ct.transform(features.head(2)).shape[1]
        torch.manual_seed(0)  # same architecture as Fulcrum's MLP; the weights do not change the timing
        hand = InferenceHead(MLP(d, 3, pkg.manifest["model"]["args"]["hidden_sizes"], 0.1), "classification").eval()
        labels = np.asarray(predictor.labels, dtype=object)
        rng = np.random.default_rng(1)
        batches = [features.iloc[rng.integers(0, len(features), 1000)].reset_index(drop=True) for _ in range(8)]
        b = [0]

        def next_batch() -> pd.DataFrame:
            b[0] = (b[0] + 1) % len(batches)
            return batches[b[0]]

        def sklearn_torch() -> pd.DataFrame:
            X = ct.transform(next_batch()).astype(np.float32)
            with torch.inference_mode():
                p = hand(torch.as_tensor(X)).numpy()
            out = {target: labels[p.argmax(axis=1)]}
            out.update({f"proba_{lab}": p[:, j] for j, lab in enumerate(labels)})
            return pd.DataFrame(out)

        bfns = {
            "fulcrum predict (onnx)": lambda: predictor.predict(next_batch()),
            "sklearn ColumnTransformer + torch": sklearn_torch,
            "fulcrum predict (native)": lambda: native.predict(next_batch()),
            "fulcrum predict_columns (onnx)": lambda: predictor.predict_columns(
                {c: next_batch()[c].to_numpy() for c in features.columns}),
        }
        times = interleaved(bfns, args.batches)
        print("\n(b) batch throughput, 1,000 rows per call, DataFrame in -> labels + probabilities out")
        print(f"{'':36s} {'rows/s':>10s} {'p50 ms':>8s} {'p95 ms':>8s}")
        rps = {}
        for name, ts in times.items():
            rps[name] = 1000 / statistics.median(ts)
            print(f"{name:36s} {rps[name]:10.0f} {np.percentile(ts, 50) * 1e3:8.2f} {np.percentile(ts, 95) * 1e3:8.2f}")
        ratio_b = rps["fulcrum predict (onnx)"] / rps["sklearn ColumnTransformer + torch"]
        print(f"throughput ratio vs sklearn + torch eager: {ratio_b:.1f}x (target >= 2x)")
        print(f"\nsummary: single-row p50 {ratio_a:.1f}x (>= 5x {'met' if ratio_a >= 5 else 'NOT met'}); "
              f"batch {ratio_b:.1f}x (>= 2x {'met' if ratio_b >= 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
