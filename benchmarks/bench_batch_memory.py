"""Batch prediction memory: ``predict_file`` (what ``fulcrum predict`` runs) streams in chunks.

Writes a 500,000-row and a 5,000,000-row CSV (mixed numeric / categorical columns in the
penguins schema plus one column the model ignores, ~60 bytes a row, stream-written in chunks into a temp dir, deleted at
the end), predicts each with the ONNX Runtime Predictor in a fresh subprocess, and
reports wall time, rows/s and peak RSS (psutil sampling every 10 ms; ru_maxrss is
not used: Linux carries it over from the parent across exec). Bounded memory means the two peaks are about equal although the
files differ 10x.

    python benchmarks/bench_batch_memory.py [--rows 5000000] [--small 500000] [--chunk-rows 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ISLANDS = np.array(["Biscoe", "Dream", "Torgersen"], dtype=object)
SEXES = np.array(["male", "female", ""], dtype=object)
STATIONS = np.array([f"station-{i:04d}" for i in range(500)], dtype=object)


def write_csv(path: Path, rows: int, chunk: int = 250_000, seed: int = 0) -> int:
    """Stream-write ``rows`` penguin-like rows (with missing values); returns the file size."""
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year,station\n")
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            bill = rng.normal(44, 5.5, n).round(3).astype(object)
            bill[rng.random(n) < 0.01] = ""
            df = pd.DataFrame({
                "island": ISLANDS[rng.integers(0, 3, n)],
                "bill_length_mm": bill,
                "bill_depth_mm": rng.normal(17, 2, n).round(3),
                "flipper_length_mm": rng.normal(200, 14, n).round(1),
                "body_mass_g": rng.normal(4200, 800, n).round(1),
                "sex": SEXES[rng.choice(3, n, p=[0.49, 0.49, 0.02])],
                "year": rng.integers(2007, 2010, n),
                "station": STATIONS[rng.integers(0, len(STATIONS), n)],
            })
            df.to_csv(fh, header=False, index=False)
            done += n
    return path.stat().st_size


def child(package: str, src: str, dst: str, chunk_rows: int) -> None:
    """Runs in a fresh process: load the predictor, then predict_file while sampling RSS."""
    import psutil

    import fulcrum
    from fulcrum.runtime import predict_file

    proc = psutil.Process()
    predictor = fulcrum.load(package)
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.01)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    rows = predict_file(predictor, src, dst, chunk_rows=chunk_rows, progress=False)
    wall = time.perf_counter() - t0
    stop.set()
    t.join()
    print(json.dumps({"rows": rows, "wall_s": wall, "rss_after_load": base, "peak_rss": max(peak[0], base),
                      "engine": predictor.engine}))


def run_child(package: Path, src: Path, dst: Path, chunk_rows: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(package), str(src), str(dst), str(chunk_rows)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--small", type=int, default=500_000)
    ap.add_argument("--chunk-rows", type=int, default=50_000)
    ap.add_argument("--model", default="mlp")
    args = ap.parse_args()

    import fulcrum

    tmp = Path(tempfile.mkdtemp(prefix="fulcrum-bench-"))
    try:
        t0 = time.perf_counter()
        pkg = fulcrum.train("builtin:penguins", model=args.model, name="penguins", registry=tmp / "registry",
                            progress=False, epochs=30)
        print(f"trained penguins {args.model} in {time.perf_counter() - t0:.1f}s")
        results = {}
        for rows in (args.small, args.rows):
            src, dst = tmp / f"in_{rows}.csv", tmp / f"out_{rows}.csv"
            t0 = time.perf_counter()
            size = write_csv(src, rows)
            print(f"wrote {rows:,} rows ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s")
            r = run_child(pkg.path, src, dst, args.chunk_rows)
            assert r["rows"] == rows and r["engine"] == "onnx", r
            out_rows = sum(1 for _ in open(dst, "rb")) - 1
            assert out_rows == rows, (out_rows, rows)
            r["size_mb"] = size / 1e6
            results[rows] = r
            src.unlink()
            dst.unlink()
        print(f"\n{'rows':>10s} {'MB':>6s} {'wall s':>8s} {'rows/s':>9s} {'RSS load MB':>12s} {'peak RSS MB':>12s}")
        for rows, r in results.items():
            print(f"{rows:>10,d} {r['size_mb']:6.0f} {r['wall_s']:8.1f} {rows / r['wall_s']:9.0f} "
                  f"{r['rss_after_load'] / 2**20:12.0f} {r['peak_rss'] / 2**20:12.0f}")
        small, big = results[args.small], results[args.rows]
        print(f"\npeak RSS ratio {args.rows:,} / {args.small:,} rows: {big['peak_rss'] / small['peak_rss']:.2f} "
              f"(file {args.rows // args.small}x larger; ~1 = memory bounded by the chunk, not the file); "
              f"growth during predict: {(small['peak_rss'] - small['rss_after_load']) / 2**20:.0f} MB vs "
              f"{(big['peak_rss'] - big['rss_after_load']) / 2**20:.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        os.environ.setdefault("TQDM_DISABLE", "1")
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
