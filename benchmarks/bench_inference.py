"""Inference speed: Fulcrum's Predictor (ONNX Runtime, one graph) vs a competent hand-written torch baseline.

The baseline is what a careful engineer writes without Fulcrum, from the same trained
model: the preprocessing compiled once from the package's ``preprocess.json`` into plain
numpy arithmetic (clip, impute, standardize, missing flags, one-hot by dict lookup), the
eager torch module under ``torch.inference_mode()``, ``torch.set_num_threads`` set to the
same thread count as ONNX Runtime, and a warm-up before timing. No DataFrame and no
Preprocessor per row. Both sides return the same thing (label + class probabilities), and
their probabilities are checked to agree before anything is timed.

(a) single row, dict in -> {prediction, proba_*} out: ``Predictor.predict_one(row)`` vs
    numpy encoding of the row + torch forward. Reported: p50/p95/p99 in microseconds.
(b) 1,000 rows per call: DataFrame in -> DataFrame out (``Predictor.predict(df)`` vs numpy
    encoding of the frame's columns + torch forward + the same output frame), and
    columns in -> arrays out (``Predictor.predict_columns`` vs the same baseline without
    the frames). Reported: rows/s from the median call.

Also shown, for reference: Fulcrum's native engine, a bare ``InferenceSession.run`` with
pre-built feeds, for 1,000 rows each side's encoding alone and its model alone (where the
time goes), and the older naive baseline (a one-row DataFrame through
``Preprocessor.transform`` / a scikit-learn ColumnTransformer).

Sides run in the same process, interleaved in rounds (A B C A B C ...) so machine noise
hits all of them; each ratio is also given per round (median and range over rounds).
On a shared, busy machine use ``--threads 1``: torch's thread pool collapses when its cores
are taken (1,000-row calls 40x slower), which says more about the machine than either side.

    python benchmarks/bench_inference.py [--calls 4000] [--batches 300] [--threads N] [--rounds 10]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

import fulcrum
from fulcrum.data import Preprocessor
from fulcrum.runtime._engines import physical_cores

MISSING = "<missing>"  # the category label Fulcrum gives a missing categorical cell


# --------------------------------------------------------------------------- the competent baseline


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


class HandEncoder:
    """preprocess.json compiled once into numpy arithmetic: what a careful engineer writes by hand."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.width = len(spec["feature_names"])
        self.numeric: list[tuple[str, int, float, float, float, Any, bool]] = []
        self.categorical: list[tuple[str, int, dict[str, int], list[str]]] = []
        self.boolean: list[tuple[str, int, float]] = []
        j = 0
        for step in spec["columns"]:
            name, kind = step["name"], step["kind"]
            if kind == "numeric":
                if step.get("na_tokens"):
                    raise SystemExit(f"the hand encoder does not cover na_tokens (column {name!r})")
                self.numeric.append((name, j, step["median"], step["mean"], step["std"], step["clip"],
                                     bool(step["missing_indicator"])))
                j += 1 + bool(step["missing_indicator"])
            elif kind == "categorical":
                cats = list(step["categories"])
                self.categorical.append((name, j, {c: i for i, c in enumerate(cats)}, cats))
                j += len(cats)
            elif kind == "boolean":
                self.boolean.append((name, j, float(step["mode"])))
                j += 1
            else:
                raise SystemExit(f"the hand encoder covers numeric, categorical and boolean columns, not {kind!r}")
        assert j == self.width, (j, self.width)
        # column-wise arrays for the batch path
        self._num_idx = np.array([n[1] for n in self.numeric], dtype=np.int64)
        self._num_median = np.array([n[2] for n in self.numeric])
        self._num_mean = np.array([n[3] for n in self.numeric])
        self._num_std = np.array([n[4] for n in self.numeric])
        lo = [n[5][0] if n[5] else -np.inf for n in self.numeric]
        hi = [n[5][1] if n[5] else np.inf for n in self.numeric]
        self._num_lo, self._num_hi = np.array(lo), np.array(hi)

    def row(self, r: Mapping[str, Any]) -> np.ndarray:  # -> (1, D) float32
        x = np.zeros((1, self.width), dtype=np.float32)
        out = x[0]
        for name, j, median, mean, std, clip, flag in self.numeric:
            v = r.get(name)
            if _is_missing(v):
                v = median
                if flag:
                    out[j + 1] = 1.0
            else:
                v = float(v)
                if clip is not None:
                    v = min(max(v, clip[0]), clip[1])
            out[j] = (v - mean) / std
        for name, j, index, _ in self.categorical:
            v = r.get(name)
            k = index.get(MISSING if _is_missing(v) else str(v))
            if k is not None:
                out[j + k] = 1.0
        for name, j, mode in self.boolean:
            v = r.get(name)
            out[j] = mode if _is_missing(v) else float(bool(v))
        return x

    def columns(self, cols: Mapping[str, Any], n: int) -> np.ndarray:  # -> (N, D) float32
        x = np.zeros((n, self.width), dtype=np.float64)
        if self.numeric:
            raw = np.column_stack([np.asarray(cols[name], dtype=np.float64) for name, *_ in self.numeric])  # (N, Dn)
            miss = np.isnan(raw)
            v = np.clip(np.where(miss, self._num_median, raw), self._num_lo, self._num_hi)
            # imputed values are not clipped by Fulcrum; the median lies inside [lo, hi] anyway
            x[:, self._num_idx] = (v - self._num_mean) / self._num_std
            for c, (name, j, _, _, _, _, flag) in enumerate(self.numeric):
                if flag:
                    x[:, j + 1] = miss[:, c]
        rows = np.arange(n)
        for name, j, index, _ in self.categorical:
            # hash the column once, look up only its distinct values: codes -1 (missing) -> MISSING
            codes, uniques = pd.factorize(cols[name], use_na_sentinel=True)
            lut = np.array([index.get(str(u), -1) for u in uniques] + [index.get(MISSING, -1)], dtype=np.int64)
            k = lut[codes]  # codes == -1 picks the last entry: the missing category
            hit = k >= 0
            x[rows[hit], j + k[hit]] = 1.0
        for name, j, mode in self.boolean:
            s = pd.Series(cols[name], dtype=object)
            x[:, j] = np.where(s.isna(), mode, s.fillna(False).astype(bool)).astype(np.float64)
        return x.astype(np.float32)


class EagerTorch:
    """Hand encoder + the package's torch module, eager, under inference_mode."""

    def __init__(self, encoder: HandEncoder, module: torch.nn.Module, labels: list[Any]) -> None:
        self.encoder, self.module = encoder, module.eval()
        self.labels = list(labels)
        self.labels_arr = np.asarray(labels, dtype=object)
        self.proba_keys = [f"proba_{lab}" for lab in labels]

    def predict_one(self, row: Mapping[str, Any]) -> dict[str, Any]:
        with torch.inference_mode():
            p = self.module(torch.from_numpy(self.encoder.row(row)))[0].numpy()
        out: dict[str, Any] = {"prediction": self.labels[int(p.argmax())]}
        out.update(zip(self.proba_keys, p.tolist()))
        return out

    def proba(self, cols: Mapping[str, Any], n: int) -> np.ndarray:
        with torch.inference_mode():
            return self.module(torch.from_numpy(self.encoder.columns(cols, n))).numpy()

    def predict_columns(self, cols: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
        p = self.proba(cols, n)
        return {"prediction": self.labels_arr[p.argmax(axis=1)], "probabilities": p}

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        p = self.proba({c: df[c].to_numpy() for c in df.columns}, len(df))
        out = {"prediction": self.labels_arr[p.argmax(axis=1)]}
        out.update({k: p[:, j] for j, k in enumerate(self.proba_keys)})
        return pd.DataFrame(out)


# --------------------------------------------------------------------------- timing


def interleaved(fns: dict[str, Callable[[], Any]], calls: int, rounds: int, warmup: int) -> dict[str, list[list[float]]]:
    """Time each fn ``calls`` times in ``rounds`` alternating blocks; returns per-round lists of seconds."""
    times: dict[str, list[list[float]]] = {k: [] for k in fns}
    per = max(1, calls // rounds)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            block = []
            for _ in range(per):
                t0 = time.perf_counter()
                fn()
                block.append(time.perf_counter() - t0)
            times[name].append(block)
    return times


def flat(blocks: list[list[float]]) -> np.ndarray:
    return np.concatenate([np.asarray(b) for b in blocks])


def per_round_ratio(base: list[list[float]], ours: list[list[float]]) -> tuple[float, float, float]:
    """base p50 / ours p50 in each round: (median, min, max) over rounds."""
    r = [statistics.median(b) / statistics.median(o) for b, o in zip(base, ours)]
    return statistics.median(r), min(r), max(r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=4000, help="single-row calls per side")
    ap.add_argument("--batches", type=int, default=300, help="1,000-row calls per side")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None, help="threads for both torch and ORT (default: physical cores)")
    args = ap.parse_args()

    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    df = fulcrum.read_table("builtin:penguins")
    target = "species"
    features = df.drop(columns=target)
    load = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pkg = fulcrum.train(df, target=target, model="mlp", name="penguins", registry=tmp, progress=False,
                            epochs=args.epochs, measure_inference=False)
        print(f"trained penguins MLP {pkg.manifest['model']['args']['hidden_sizes']} in {time.perf_counter() - t0:.1f}s; "
              f"threads (torch and ORT): {threads}; load average before timing: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              f"on {os.cpu_count()} CPUs")
        if threads > 1 and load[0] > (os.cpu_count() or 1):
            print(f"warning: the machine is busy (load {load[0]:.1f} on {os.cpu_count()} CPUs); with {threads} threads "
                  "the figures say more about the load than about either side: rerun with --threads 1")
        predictor = fulcrum.load(str(pkg.path), threads=threads)  # engine auto -> onnx
        native = fulcrum.load(str(pkg.path), engine="native")
        assert predictor.engine == "onnx"
        spec = pkg.read_json("preprocess.json")
        module = native.adapter.torch_module()
        eager = EagerTorch(HandEncoder(spec), module, list(predictor.labels))
        pre = Preprocessor.from_dict(spec)

        rows = features.sample(200, random_state=0).to_dict("records")
        # the baseline does the same work: same features as Fulcrum's Preprocessor, same probabilities
        X_ref = pre.transform(pd.DataFrame(rows))
        X_hand = np.vstack([eager.encoder.row(r) for r in rows])
        X_cols = eager.encoder.columns({c: pd.DataFrame(rows)[c].to_numpy() for c in features.columns}, len(rows))
        assert np.allclose(X_ref, X_hand, atol=1e-5) and np.allclose(X_ref, X_cols, atol=1e-5), "hand encoder differs"
        for r in rows[:50]:
            a, b = predictor.predict_one(r), eager.predict_one(r)
            assert a["prediction"] == b["prediction"], (a, b)
            assert max(abs(a[k] - b[k]) for k in eager.proba_keys) < 1e-4, (a, b)

        # ---------------------------------------------------------------- (a) single row
        k = [0]

        def next_row() -> dict[str, Any]:
            k[0] = (k[0] + 1) % len(rows)
            return rows[k[0]]

        def naive() -> Any:
            X = pre.transform(pd.DataFrame([next_row()]))
            with torch.inference_mode():
                return module(torch.as_tensor(X))

        sess = predictor._onnx.session
        feeds = predictor._encoder.encode_row(rows[0])
        ours_a, base_a = "fulcrum predict_one (onnx)", "torch eager + numpy encoding"
        fns = {
            ours_a: lambda: predictor.predict_one(next_row()),
            base_a: lambda: eager.predict_one(next_row()),
            "fulcrum predict_one (native)": lambda: native.predict_one(next_row()),
            "bare ort session.run (fixed feeds)": lambda: sess.run(["probabilities"], feeds),
            "naive: 1-row DataFrame + Preprocessor": naive,
        }
        times = interleaved(fns, args.calls, args.rounds, warmup=200)
        print(f"\n(a) single row, dict in -> label + probabilities out; microseconds "
              f"({args.calls // args.rounds * args.rounds} calls per side, {args.rounds} interleaved rounds)")
        print(f"{'':40s} {'p50':>8s} {'p95':>8s} {'p99':>8s}")
        for name, blocks in times.items():
            us = flat(blocks) * 1e6
            print(f"{name:40s} {np.percentile(us, 50):8.1f} {np.percentile(us, 95):8.1f} {np.percentile(us, 99):8.1f}")
        ratio_a = per_round_ratio(times[base_a], times[ours_a])
        print(f"p50 speed-up of Fulcrum vs the competent baseline: {ratio_a[0]:.2f}x "
              f"(per-round range {ratio_a[1]:.2f}-{ratio_a[2]:.2f}x)")

        # ---------------------------------------------------------------- (b) 1,000-row calls
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        rng = np.random.default_rng(1)
        frames = [features.iloc[rng.integers(0, len(features), 1000)].reset_index(drop=True) for _ in range(8)]
        colsets = [{c: f[c].to_numpy() for c in features.columns} for f in frames]
        for f, cols in zip(frames[:2], colsets[:2]):
            a, b = predictor.predict_columns(cols)["probabilities"], eager.predict_columns(cols, 1000)["probabilities"]
            assert np.abs(a - b).max() < 1e-4
        b_ = [0]

        def nxt() -> int:
            b_[0] = (b_[0] + 1) % len(frames)
            return b_[0]

        num_cols = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])]
        cat_cols = [c for c in features.columns if c not in num_cols]
        ct = ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), num_cols),
            ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value=MISSING),
                                  OneHotEncoder(handle_unknown="ignore", sparse_output=False)), cat_cols),
        ]).fit(features)
        labels_arr = np.asarray(predictor.labels, dtype=object)
        from fulcrum.models import MLP, InferenceHead

        torch.manual_seed(0)  # same architecture; the weights do not change the timing
        hand = InferenceHead(MLP(ct.transform(features.head(2)).shape[1], len(labels_arr),
                                 pkg.manifest["model"]["args"]["hidden_sizes"], 0.1), "classification").eval()

        def sklearn_torch() -> pd.DataFrame:
            X = ct.transform(frames[nxt()]).astype(np.float32)
            with torch.inference_mode():
                p = hand(torch.as_tensor(X)).numpy()
            out = {"prediction": labels_arr[p.argmax(axis=1)]}
            out.update({f"proba_{lab}": p[:, j] for j, lab in enumerate(labels_arr)})
            return pd.DataFrame(out)

        feeds_b = [predictor._encoder.encode_columns(c) for c in colsets]
        X_b = [torch.from_numpy(eager.encoder.columns(c, 1000)) for c in colsets]

        def torch_only(X: torch.Tensor) -> np.ndarray:
            with torch.inference_mode():
                return module(X).numpy()

        ours_df, base_df = "fulcrum predict(df) (onnx)", "torch eager + numpy encoding, df"
        ours_col, base_col = "fulcrum predict_columns (onnx)", "torch eager + numpy encoding, columns"
        bfns = {
            ours_df: lambda: predictor.predict(frames[nxt()]),
            base_df: lambda: eager.predict_frame(frames[nxt()]),
            ours_col: lambda: predictor.predict_columns(colsets[nxt()]),
            base_col: lambda: eager.predict_columns(colsets[nxt()], 1000),
            "fulcrum predict(df) (native)": lambda: native.predict(frames[nxt()]),
            "naive: sklearn ColumnTransformer + torch": sklearn_torch,
            # where the time goes: each side's encoding of the columns, and its model on ready inputs
            "  fulcrum encoding only (encode_columns)": lambda: predictor._encoder.encode_columns(colsets[nxt()]),
            "  baseline encoding only (numpy)": lambda: eager.encoder.columns(colsets[nxt()], 1000),
            "  ort session.run only (ready feeds)": lambda: sess.run(["probabilities"], feeds_b[nxt()]),
            "  torch forward only (ready features)": lambda: torch_only(X_b[nxt()]),
        }
        btimes = interleaved(bfns, args.batches, args.rounds, warmup=20)
        print(f"\n(b) 1,000 rows per call ({args.batches // args.rounds * args.rounds} calls per side)")
        print(f"{'':40s} {'rows/s':>10s} {'p50 ms':>8s} {'p95 ms':>8s}")
        for name, blocks in btimes.items():
            ts = flat(blocks)
            print(f"{name:40s} {1000 / np.median(ts):10.0f} {np.percentile(ts, 50) * 1e3:8.2f} {np.percentile(ts, 95) * 1e3:8.2f}")
        ratio_df = per_round_ratio(btimes[base_df], btimes[ours_df])
        ratio_col = per_round_ratio(btimes[base_col], btimes[ours_col])
        print(f"rows/s of Fulcrum vs the competent baseline: DataFrame in/out {ratio_df[0]:.2f}x "
              f"(per-round range {ratio_df[1]:.2f}-{ratio_df[2]:.2f}x); columns in/out {ratio_col[0]:.2f}x "
              f"(range {ratio_col[1]:.2f}-{ratio_col[2]:.2f}x)")
        load = os.getloadavg()
        print(f"\nsummary (threads {threads}, load average after: {load[0]:.2f}): single-row p50 {ratio_a[0]:.2f}x, "
              f"1,000 rows {ratio_df[0]:.2f}x (DataFrame) / {ratio_col[0]:.2f}x (columns) vs torch eager + numpy encoding")


if __name__ == "__main__":
    main()
