"""Ray on one machine: what data-parallel training and replicated serving cost and give here.

Training: the same MLP, data, epochs and global batch, through ``fulcrum.training._ray.RayTrainer`` with 1 and
with 2 workers (a 2-CPU local cluster), beside the plain single-process ``Trainer``. Printed: Ray's start-up
(``ray.init``) once, each fit's wall time, the steady time per epoch (from epoch end clocks, so the worker
group's start is excluded) and the final validation accuracy of each; the ratio 2 workers / 1 worker.

Serving: the same registered model behind the single-process server (``fulcrum serve``) and behind Ray Serve
with 2 replicas (``fulcrum serve --backend ray --replicas 2``), each loaded by wrk (native, 1 thread,
64 keep-alive connections) on loopback; rounds interleaved. Printed: successful requests/s and p99.

    .venv/bin/python benchmarks/bench_ray.py [--rows 20000] [--epochs 6] [--duration 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
PY = sys.executable


def _blobs(rows: int, features: int = 20, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, rows)
    centers = rng.normal(scale=0.6, size=(classes, features))
    X = (rng.normal(size=(rows, features)) + centers[y]).astype(np.float32)
    return X, y


class EpochClock:
    """Stamps each epoch's log with the wall clock at its end (the history comes back from the workers)."""

    def on_train_begin(self, trainer: Any) -> None: ...

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        logs["clock"] = time.time()

    def on_train_end(self, trainer: Any) -> None: ...


def _steady_epoch_s(history: list[dict[str, Any]]) -> float:
    clocks = [h["clock"] for h in history]
    return (clocks[-1] - clocks[0]) / max(1, len(clocks) - 1)


def training(rows: int, epochs: int) -> None:
    import torch
    from torch import nn

    from fulcrum.config import TrainConfig
    from fulcrum.models import MLP
    from fulcrum.training import Callback, Trainer
    from fulcrum.training._ray import RayTrainer

    class Clock(EpochClock, Callback):
        pass

    X, y = _blobs(rows)
    cut = int(0.8 * rows)
    train, val = (X[:cut], y[:cut]), (X[cut:], y[cut:])
    cfg = TrainConfig(epochs=epochs, batch_size=256, lr=3e-3, hidden_sizes=(256, 128), dropout=0.0,
                      early_stopping=False, progress=False, device="cpu")
    metric = lambda o, t: {"accuracy": float((o.argmax(1) == t).float().mean())}  # noqa: E731
    kw = dict(loss_fn=nn.CrossEntropyLoss(), target_dtype=torch.long, metric_fn=metric)

    def model() -> nn.Module:
        torch.manual_seed(0)
        return MLP(X.shape[1], 3, cfg.hidden_sizes, 0.0)

    print(f"== training: MLP {cfg.hidden_sizes}, {cut} training rows x {X.shape[1]} features, {epochs} epochs, "
          f"global batch {cfg.batch_size}")
    # one torch thread, as in a Ray worker with 1 CPU (Ray sets OMP_NUM_THREADS=1 there): on a busy 2-core box
    # torch's default 2 spinning intra-op threads made the same loop ~10x slower per epoch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t = time.perf_counter()
    local = Trainer(cfg, callbacks=[Clock()]).fit(model(), train, val, **kw)
    local_s = time.perf_counter() - t
    torch.set_num_threads(threads)

    import ray

    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False)
    init_s = time.perf_counter() - t
    out: dict[int, tuple[float, Any]] = {}
    try:
        for workers in (1, 2):
            t = time.perf_counter()
            res = RayTrainer(cfg.replace(backend="ray", workers=workers), callbacks=[Clock()]).fit(
                model(), train, val, **kw)
            out[workers] = (time.perf_counter() - t, res)
    finally:
        ray.shutdown()
    print(f"  ray.init (local cluster, 2 CPUs): {init_s:.1f} s (start-up, paid once per process)")
    print(f"  {'run':<26}{'fit wall s':>11}{'steady s/epoch':>16}{'val accuracy':>14}")
    print(f"  {'local Trainer (1 thread)':<26}{local_s:>11.1f}{_steady_epoch_s(local.history):>16.3f}"
          f"{local.history[-1]['val_accuracy']:>14.4f}")
    for w, (secs, res) in out.items():
        print(f"  {f'Ray Train, {w} worker(s)':<26}{secs:>11.1f}{_steady_epoch_s(res.history):>16.3f}"
              f"{res.history[-1]['val_accuracy']:>14.4f}")
    (s1, r1), (s2, r2) = out[1], out[2]
    e1, e2 = _steady_epoch_s(r1.history), _steady_epoch_s(r2.history)
    print(f"  2 workers / 1 worker: fit wall {s2 / s1:.2f}x, steady epoch {e2 / e1:.2f}x "
          f"(speed-up {e1 / e2:.2f}x); per-fit worker-group start ~{s1 - e1 * epochs:.1f} s (1 worker), "
          f"~{s2 - e2 * epochs:.1f} s (2 workers)")
    print(f"  load average now: {os.getloadavg()}")


def serving(duration: float, rounds: int) -> None:
    import bench_serve as bs

    home = tempfile.mkdtemp(prefix="fulcrum-bench-ray-")
    env = {**os.environ, "FULCRUM_HOME": home}
    try:
        subprocess.run([PY, "-m", "fulcrum", "train", "builtin:iris", "--model", "linear", "--no-progress", "--json"],
                       env=env, check=True, capture_output=True)
        body, path, C = {"records": [bs._row_of(home, "iris")]}, "/v1/models/iris/predict", 64
        print(f"\n== serving: iris (linear), 1 row per request, wrk 1 thread, {C} connections, {duration:g} s "
              f"per run, {rounds} interleaved round(s)")
        runs: dict[str, list[dict[str, Any]]] = {"single": [], "ray2": []}
        t = time.perf_counter()
        ray_port = bs._free_port()
        ray_cmd = [PY, "-m", "fulcrum", "serve", "iris", "--backend", "ray", "--replicas", "2", "--port", str(ray_port),
                   "--no-access-log", "--log-level", "warning"]
        with bs.Server(ray_cmd, ray_port, "/v2/health/ready", env, "ray serve x2") as ray_srv:
            ray_start = time.perf_counter() - t
            with bs.fulcrum_server(env, "iris", "--no-access-log", "--log-level", "warning") as single:
                for _ in range(rounds):
                    runs["single"].append(bs.wrk(single.port, path, body, C, duration))
                    runs["ray2"].append(bs.wrk(ray_srv.port, path, body, C, duration))
        print(f"  Ray Serve start (cluster + 2 replicas, until ready): {ray_start:.1f} s")
        for name, label in (("single", "single process (uvicorn)"), ("ray2", "Ray Serve, 2 replicas")):
            rs = runs[name]
            ok = [r["ok_rps"] for r in rs]
            p99 = [r["p99_us"] / 1000 for r in rs]
            bad: dict[int, int] = {}
            for r in rs:
                for k, v in r["codes"].items():
                    if k != 200:
                        bad[k] = bad.get(k, 0) + v
            print(f"  {label:<26} ok req/s {np.median(ok):8.0f} (rounds {', '.join(f'{x:.0f}' for x in ok)})   "
                  f"p99 {np.median(p99):7.1f} ms (rounds {', '.join(f'{x:.1f}' for x in p99)})   non-200: {bad or 0}")
        a, b = np.median([r["ok_rps"] for r in runs["ray2"]]), np.median([r["ok_rps"] for r in runs["single"]])
        print(f"  Ray Serve x2 / single: throughput {a / b:.2f}x" if b > 0 else "  no successful request on the single server")
        print(f"  load average now: {os.getloadavg()}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-serving", action="store_true")
    args = ap.parse_args()
    if shutil.which("wrk") is None and not args.skip_serving:
        sys.exit("bench_ray needs wrk (a native HTTP load generator): apt-get install wrk")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()}")
    training(args.rows, args.epochs)
    if not args.skip_serving:
        serving(args.duration, args.rounds)


if __name__ == "__main__":
    main()
