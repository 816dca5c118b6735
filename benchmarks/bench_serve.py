"""Serving benchmarks, loopback only, every server in its own process, figures side by side.

    python benchmarks/bench_serve.py [--duration 5] [--clients 64] [--only 1,2,3,4]

(1) Fulcrum vs the server a user would write (benchmarks/baseline_server.py: FastAPI + sklearn
    preprocessing + torch per request): throughput and p99 at 64 concurrent clients, one row per
    request. Target: >= 3x throughput at equal or lower p99.
(2) Adaptive batching on a wide MLP (>= 1 ms per single-row inference) vs the same server with
    batching off (--max-batch-size 1). Target: >= 3x throughput; p99 of admitted requests.
(3) HTTP overhead: a trivial model (linear, iris) behind Fulcrum vs a bare Starlette JSON endpoint.
    Target: >= 50% of its throughput.
(4) 5x overload (open-loop arrivals at 5x the measured capacity): rejected answered < 50 ms,
    p99 of admitted within 2x the p99 at capacity without overload (and, for reference, vs one
    client alone), server RSS bounded, recovery within seconds. Run on a compute-bound setup (wide
    MLP, batching off) so that 5x its capacity is a rate the generator can offer on 2 shared cores.

The load generator is raw asyncio HTTP/1.1 with keep-alive connections (cheaper per request
than an HTTP client library, so the 2-core machine spends its time in the servers). Bounded
in time and requests. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable

ROW = {"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5, "flipper_length_mm": 215.0,
       "body_mass_g": 5000.0, "sex": "female", "year": 2008}
IRIS_ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}


# --------------------------------------------------------------------------- load generation


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raw(path: str, body: dict[str, Any], port: int) -> bytes:
    payload = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n")
    return head.encode() + payload


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Conn:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return cls(r, w)

    async def send(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def closed_loop(port: int, path: str, body: dict[str, Any], clients: int, duration: float,
                      warmup: float = 1.0) -> dict[str, Any]:
    """``clients`` connections, each sending the next request when the last is answered."""
    raw = _raw(path, body, port)
    lat: list[float] = []
    codes: dict[int, int] = {}
    t_start = time.perf_counter()
    t_measure = t_start + warmup
    t_end = t_measure + duration

    async def client() -> None:
        conn = await _Conn.open(port)
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= t_end:
                    return
                status = await conn.send(raw)
                t1 = time.perf_counter()
                if t0 >= t_measure:
                    codes[status] = codes.get(status, 0) + 1
                    if status == 200:
                        lat.append(t1 - t0)
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    ok = codes.get(200, 0)
    return {"rps": ok / duration, "p50_ms": _pct(lat, 0.5) * 1e3, "p99_ms": _pct(lat, 0.99) * 1e3, "codes": codes}


async def open_loop(port: int, path: str, body: dict[str, Any], rate: float, duration: float,
                    max_conns: int = 512) -> dict[str, Any]:
    """Arrivals at ``rate``/s whatever the answers (an idle connection per request; if none is
    idle a new one is opened, up to ``max_conns``; beyond that the arrival is counted as unsent)."""
    raw = _raw(path, body, port)
    idle: list[_Conn] = []
    opened = [0]
    lat: dict[int, list[float]] = {}
    unsent = [0]
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        conn = idle.pop() if idle else None
        if conn is None:
            if opened[0] >= max_conns:
                unsent[0] += 1
                return
            opened[0] += 1
            conn = await _Conn.open(port)
        t0 = time.perf_counter()
        try:
            status = await conn.send(raw)
        except (ConnectionError, asyncio.IncompleteReadError):
            opened[0] -= 1
            lat.setdefault(0, []).append(time.perf_counter() - t0)
            return
        lat.setdefault(status, []).append(time.perf_counter() - t0)
        idle.append(conn)

    start = time.perf_counter()
    sent = 0
    while True:
        now = time.perf_counter()
        if now - start >= duration:
            break
        due = int((now - start) * rate) - sent
        for _ in range(max(0, due)):
            t = asyncio.create_task(one())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        sent += max(0, due)
        await asyncio.sleep(0.001)
    await asyncio.gather(*tasks)
    for c in idle:
        c.close()
    elapsed = time.perf_counter() - start
    return {"offered_rps": sent / elapsed, "lat": lat, "unsent": unsent[0], "elapsed": elapsed}


# --------------------------------------------------------------------------- servers


class Server:
    def __init__(self, cmd: list[str], port: int, ready_path: str, env: dict[str, str], name: str) -> None:
        self.name = name
        self.port = port
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}: {' '.join(cmd)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(f"GET {ready_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() if ready_path else
                              b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
                    if s.recv(64)[9:12] in (b"200", b"422"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} never became ready")

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def fulcrum_server(env: dict[str, str], ref: str, *extra: str) -> Server:
    port = _free_port()
    cmd = [PY, "-m", "fulcrum", "serve", ref, "--port", str(port), *extra]
    return Server(cmd, port, "/v2/health/ready", env, f"fulcrum {ref} {' '.join(extra)}")


def other_server(env: dict[str, str], kind: str, *extra: str) -> Server:
    port = _free_port()
    cmd = [PY, str(HERE / "baseline_server.py"), "--kind", kind, "--port", str(port), *extra]
    return Server(cmd, port, "", env, kind)


def measure(server: Server, path: str, body: dict[str, Any], clients: int, duration: float) -> dict[str, Any]:
    try:
        return asyncio.run(closed_loop(server.port, path, body, clients, duration))
    finally:
        server.stop()


# --------------------------------------------------------------------------- scenarios


def _row(label: str, r: dict[str, Any]) -> str:
    bad = {k: v for k, v in r["codes"].items() if k != 200}
    return f"  {label:<34} {r['rps']:>8.0f} req/s   p50 {r['p50_ms']:>7.2f} ms   p99 {r['p99_ms']:>7.2f} ms" + (
        f"   non-200: {bad}" if bad else "")


def single_row_ms(home: str, ref: str) -> float:
    code = (
        "import time, fulcrum, pandas as pd\n"
        f"p = fulcrum.load({ref!r}); row = pd.DataFrame([{ROW!r}])\n"
        "p.predict_output(row)\n"
        "t = time.perf_counter()\n"
        "for _ in range(200): p.predict_output(row)\n"
        "print((time.perf_counter() - t) / 200 * 1e3)\n"
    )
    out = subprocess.run([PY, "-c", code], env={**os.environ, "FULCRUM_HOME": home}, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (after 1 s warm-up)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--only", default="1,2,3,4")
    ap.add_argument("--wide", default="2048,2048,2048", help="hidden sizes of the wide MLP of (2)")
    args = ap.parse_args()
    only = {int(x) for x in args.only.split(",")}

    import fulcrum
    from fulcrum.artifact import Registry

    home = tempfile.mkdtemp(prefix="fulcrum-bench-serve-")
    env = {**os.environ, "FULCRUM_HOME": home, "PYTHONUNBUFFERED": "1"}
    reg = Registry(Path(home) / "registry")
    print("training the benchmark models ...", flush=True)
    fulcrum.train("builtin:penguins", name="penguins", model="mlp", epochs=3, progress=False, registry=reg)
    wide = [int(h) for h in args.wide.split(",")]
    if only & {2, 4}:
        fulcrum.train("builtin:penguins", name="wide", model="mlp", epochs=1, hidden_sizes=wide, progress=False,
                      registry=reg)
    fulcrum.train("builtin:iris", name="iris", model="linear", progress=False, registry=reg)
    import uvicorn.config

    http_impl = "httptools" if uvicorn.config.HTTP_PROTOCOLS and _has("httptools") else "h11"
    print(f"machine: {os.cpu_count()} cores; uvicorn HTTP parser: {http_impl}; loop: {'uvloop' if _has('uvloop') else 'asyncio'}")
    print(f"load: {args.clients} concurrent keep-alive clients, one row per request, {args.duration:g} s measured\n")
    C, D = args.clients, args.duration
    predict = {"records": [ROW]}

    if 1 in only:
        print("(1) Fulcrum vs the hand-written FastAPI + sklearn + torch server (penguins MLP 128-64)")
        f = measure(fulcrum_server(env, "penguins"), "/v1/models/penguins/predict", predict, C, D)
        b = measure(other_server(env, "baseline", "--hidden", "128,64"), "/predict", predict, C, D)
        print(_row("fulcrum (defaults)", f))
        print(_row("baseline", b))
        print(f"  => throughput x{f['rps'] / b['rps']:.2f} (target >= 3), p99 ratio {f['p99_ms'] / b['p99_ms']:.2f} (target <= 1)\n")

    if 2 in only:
        ms = single_row_ms(home, "wide")
        print(f"(2) adaptive batching, wide MLP {args.wide} ({ms:.2f} ms per single-row inference)")
        on = measure(fulcrum_server(env, "wide"), "/v1/models/wide/predict", predict, C, D)
        off = measure(fulcrum_server(env, "wide", "--max-batch-size", "1"), "/v1/models/wide/predict", predict, C, D)
        print(_row("batching on (max 64 rows, 5 ms)", on))
        print(_row("batching off (--max-batch-size 1)", off))
        print(f"  => throughput x{on['rps'] / off['rps']:.2f} (target >= 3), p99 on/off {on['p99_ms'] / off['p99_ms']:.2f}\n")

    if 3 in only:
        print("(3) HTTP overhead: trivial model (iris, linear) vs a bare Starlette JSON endpoint")
        iris = {"records": [IRIS_ROW]}
        f = measure(fulcrum_server(env, "iris"), "/v1/models/iris/predict", iris, C, D)
        fq = measure(fulcrum_server(env, "iris", "--no-access-log", "--no-feedback", "--no-monitor"),
                     "/v1/models/iris/predict", iris, C, D)
        bare = measure(other_server(env, "bare"), "/predict", iris, C, D)
        print(_row("fulcrum (defaults)", f))
        print(_row("fulcrum (no log/feedback/monitor)", fq))
        print(_row("bare starlette", bare))
        print(f"  => fulcrum/bare {f['rps'] / bare['rps']:.0%} with defaults, {fq['rps'] / bare['rps']:.0%} lean "
              "(target >= 50%)\n")

    if 4 in only:
        overload(env, C, D)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def overload(env: dict[str, str], clients: int, duration: float) -> None:
    # A compute-bound configuration (wide MLP, one row per batch, ~2 ms each) so that 5x its
    # capacity is a rate the load generator can actually offer while sharing the 2 cores.
    # The queue is sized to the latency budget: 64 waiting x ~2 ms = ~130 ms at most.
    print("(4) 5x overload (wide MLP, --max-batch-size 1 --max-queue 64, open-loop arrivals)")
    path, body = "/v1/models/wide/predict", {"records": [ROW]}
    srv = fulcrum_server(env, "wide", "--max-batch-size", "1", "--max-queue", "64")
    try:
        unloaded = asyncio.run(closed_loop(srv.port, path, body, 1, 3.0))
        at_capacity = asyncio.run(closed_loop(srv.port, path, body, clients, duration))
        capacity = at_capacity["rps"]
        rss_before = srv.rss_mb()
        rss_peak = [rss_before]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                rss_peak[0] = max(rss_peak[0], srv.rss_mb())
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        res = asyncio.run(open_loop(srv.port, path, body, 5 * capacity, duration))
        t_end = time.perf_counter()
        recovered = asyncio.run(_recovery(srv.port, path, body, 2 * unloaded["p99_ms"] / 1e3))
        recovery_s = recovered - t_end
        stop.set()
        sampler.join()
        after = asyncio.run(closed_loop(srv.port, path, body, 1, 2.0, warmup=0.5))
    finally:
        srv.stop()
    ok = res["lat"].get(200, [])
    rej = res["lat"].get(503, [])
    other = {k: len(v) for k, v in res["lat"].items() if k not in (200, 503)}
    p99_ok = _pct(ok, .99) * 1e3
    print(f"  1 client: p50 {unloaded['p50_ms']:.2f} ms, p99 {unloaded['p99_ms']:.2f} ms; at capacity ({clients} clients, "
          f"no rejections): {capacity:.0f} req/s, p99 {at_capacity['p99_ms']:.1f} ms")
    print(f"  offered {res['offered_rps']:.0f} req/s ({res['offered_rps'] / capacity:.1f}x capacity), "
          f"{res['unsent']} arrivals unsent (client out of connections)")
    print(f"  admitted {len(ok)} ({len(ok) / res['elapsed']:.0f} req/s): p50 {_pct(ok, .5) * 1e3:.1f} ms, p99 {p99_ok:.1f} ms"
          f" = {p99_ok / at_capacity['p99_ms']:.2f}x the at-capacity p99 (target <= 2), "
          f"{p99_ok / unloaded['p99_ms']:.0f}x the 1-client p99")
    print(f"  rejected 503 {len(rej)}: p50 {_pct(rej, .5) * 1e3:.1f} ms, p99 {_pct(rej, .99) * 1e3:.1f} ms (target < 50 ms)"
          + (f"; other {other}" if other else ""))
    print(f"  server RSS {rss_before:.0f} MB before, {rss_peak[0]:.0f} MB peak during the overload")
    print(f"  recovery: 5 consecutive answers within 2x the 1-client p99 from {recovery_s:.2f} s after the overload "
          f"stopped; then p99 {after['p99_ms']:.2f} ms\n")


async def _recovery(port: int, path: str, body: dict[str, Any], fast_s: float) -> float:
    raw = _raw(path, body, port)
    conn = await _Conn.open(port)
    streak, first = 0, 0.0
    try:
        while streak < 5:
            t0 = time.perf_counter()
            status = await conn.send(raw)
            if status == 200 and time.perf_counter() - t0 <= fast_s:
                if streak == 0:
                    first = t0
                streak += 1
            else:
                streak = 0
                await asyncio.sleep(0.01)
    finally:
        conn.close()
    return first


if __name__ == "__main__":
    main()
