"""Serving benchmarks, loopback only, every server in its own process, figures side by side.

    python benchmarks/bench_serve.py [--duration 8] [--clients 32] [--only 1,2,3] [--wide 2048,2048,2048]

Load comes from wrk (a native HTTP load generator: ``apt-get install wrk``), one thread with
keep-alive connections, so the client does not eat the server's cores; a Lua script counts the
answers by status. Every figure is measured in this run, beside the one it is compared with.

(1) Fulcrum vs a competent hand-written server (benchmarks/baseline_server.py: async FastAPI,
    orjson, numpy encoding fitted once, torch threads set, warmed up; one computation per
    request), one row per request, with Fulcrum's batching on (default) and off
    (--max-batch-size 1), on two models:
      - the default model: what `fulcrum train builtin:breast_cancer` picks (printed), against
        the baseline's numpy linear model of the same shape;
      - a wide MLP (--wide, 2048x3 by default) on breast_cancer, against torch eager.
    The batching gain (on vs off) is printed for each model.
(2) HTTP overhead: a trivial model (iris, linear) behind Fulcrum vs a bare Starlette JSON endpoint.
(3) Overload, on the default model: the connection count at which throughput saturates (C, the
    smallest count reaching 90 % of the best of a sweep), then C and 10xC connections in
    interleaved rounds (and --far x C once). Goals: at 10xC successful throughput >= 80 % of
    the at-capacity throughput, every rejection a fast 503 (latency of the 503s seen by a probe
    client during the overload), no request answered after its deadline (wrk's slowest answer
    vs --timeout, and no 504).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable

_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%(body)s]==]
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
  local merged = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("codes")) do merged[k] = (merged[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(merged) do table.insert(parts, string.format('"%%d": %%d', k, v)) end
  local e = summary.errors
  io.write(string.format('\nRESULT {"duration_us": %%d, "requests": %%d, "codes": {%%s}, "p50_us": %%d, "p99_us": %%d, '
    .. '"max_us": %%d, "errors": {"connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}}\n',
    summary.duration, summary.requests, table.concat(parts, ", "), latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.timeout))
end
"""


# --------------------------------------------------------------------------- load


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrk(port: int, path: str, body: dict[str, Any], connections: int, duration: float, timeout_s: float = 30.0) -> dict[str, Any]:
    """``connections`` keep-alive connections for ``duration`` seconds; statuses, percentiles."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_LUA % {"body": json.dumps(body)})
        script = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", f"--timeout={timeout_s:g}s", "-s", script,
             f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, timeout=duration + timeout_s + 60,
        )
    finally:
        os.unlink(script)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line[7:])
    r["codes"] = {int(k): v for k, v in r["codes"].items()}
    secs = r["duration_us"] / 1e6
    r["ok_rps"] = r["codes"].get(200, 0) / secs
    r["rps"] = r["requests"] / secs
    return r


class Probe:
    """One sequential client timing each answer by status while a load runs (a light client)."""

    def __init__(self, port: int, path: str, body: dict[str, Any], pause_s: float = 0.02) -> None:
        self.port, self.path, self.body, self.pause_s = port, path, json.dumps(body), pause_s
        self.lat: dict[int, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                conn.request("POST", self.path, self.body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                status = 0
            self.lat.setdefault(status, []).append(time.perf_counter() - t0)
            time.sleep(self.pause_s)
        conn.close()


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


# --------------------------------------------------------------------------- servers


class Server:
    def __init__(self, cmd: list[str], port: int, ready: str | None, env: dict[str, str], name: str) -> None:
        self.name, self.port = name, port
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}: {' '.join(cmd)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(f"GET {ready} HTTP/1.1\r\nHost: x\r\n\r\n".encode() if ready else
                              b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
                    if s.recv(64)[9:12] in (b"200", b"422"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} never became ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def fulcrum_server(env: dict[str, str], ref: str, *extra: str) -> Server:
    port = _free_port()
    cmd = [PY, "-m", "fulcrum", "serve", ref, "--port", str(port), *extra]
    return Server(cmd, port, "/v2/health/ready", env, f"fulcrum {ref} {' '.join(extra)}".strip())


def other_server(env: dict[str, str], kind: str, *extra: str) -> Server:
    port = _free_port()
    cmd = [PY, str(HERE / "baseline_server.py"), "--kind", kind, "--port", str(port), *extra]
    return Server(cmd, port, None, env, f"{kind} {' '.join(extra)}".strip())


# --------------------------------------------------------------------------- scenarios


def _row(label: str, r: dict[str, Any]) -> str:
    bad = {k: v for k, v in r["codes"].items() if k != 200}
    return (f"  {label:<44} {r['ok_rps']:>8.0f} ok/s   p50 {r['p50_us'] / 1e3:>7.2f} ms   p99 {r['p99_us'] / 1e3:>7.2f} ms"
            + (f"   non-200: {bad}" if bad else ""))


def _row_of(home: str, ref: str) -> dict[str, Any]:
    """One input row of ``ref``'s data (the package's own input schema and data source)."""
    code = (
        "import json, fulcrum\n"
        "from fulcrum.data import read_table\n"
        f"m = fulcrum.Registry().load({ref!r}).manifest\n"
        "cols = [c['name'] for c in m['inputs']]\n"
        "df = read_table(m['data']['source'])\n"
        "row = df[cols].iloc[0]\n"
        "print(json.dumps({c: (None if row[c] != row[c] else row[c].item() if hasattr(row[c], 'item') else row[c])"
        " for c in cols}))\n"
    )
    out = subprocess.run([PY, "-c", code], env={**os.environ, "FULCRUM_HOME": home}, capture_output=True, text=True,
                         check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def versus_baseline(env: dict[str, str], home: str, C: int, D: float, wide: str) -> None:
    print(f"(1) Fulcrum vs the hand-written baseline, one row per request, {C} connections")
    for ref, base_args, what in (
        ("cancer", ("--data", "builtin:breast_cancer", "--model", "linear"), "default model"),
        ("wide", ("--data", "builtin:breast_cancer", "--model", "mlp", "--hidden", wide), f"wide MLP {wide}"),
    ):
        m = json.loads(subprocess.run([PY, "-c", f"import json, fulcrum; print(json.dumps(fulcrum.Registry().load({ref!r})"
                                       ".manifest['model']))"], env=env, capture_output=True, text=True,
                                      check=True).stdout)
        hidden = (m.get("args") or {}).get("hidden_sizes")
        print(f"  model ({what}): breast_cancer, {m.get('family')}" + (f" {hidden}" if hidden else "")
              + (" (what `fulcrum train builtin:breast_cancer` picks)" if ref == "cancer" else ""))
        body = {"records": [_row_of(home, ref)]}
        path = f"/v1/models/{ref}/predict"
        rounds: dict[str, list[dict[str, Any]]] = {"on": [], "off": [], "base": []}
        for _ in range(2):  # interleaved rounds: machine noise hits all three alike
            with fulcrum_server(env, ref, "--no-access-log") as s:
                rounds["on"].append(wrk(s.port, path, body, C, D))
            with fulcrum_server(env, ref, "--no-access-log", "--max-batch-size", "1") as s:
                rounds["off"].append(wrk(s.port, path, body, C, D))
            with other_server(env, "baseline", *base_args) as s:
                rounds["base"].append(wrk(s.port, "/predict", body, C, D))
        best = {k: max(v, key=lambda r: r["ok_rps"]) for k, v in rounds.items()}
        print(_row("fulcrum, batching on (default)", best["on"]))
        print(_row("fulcrum, batching off (--max-batch-size 1)", best["off"]))
        print(_row("hand-written baseline", best["base"]))
        on, off, base = (best[k]["ok_rps"] for k in ("on", "off", "base"))
        print(f"  => on {what}: fulcrum/baseline x{on / base:.2f} with batching, x{off / base:.2f} without; "
              f"batching gain x{on / off:.2f} (best of 2 interleaved rounds)\n")


def http_overhead(env: dict[str, str], home: str, C: int, D: float) -> None:
    print("(2) HTTP overhead: trivial model (iris, linear) vs a bare Starlette JSON endpoint")
    iris = {"records": [_row_of(home, "iris")]}
    with fulcrum_server(env, "iris") as s:
        f = wrk(s.port, "/v1/models/iris/predict", iris, C, D)
    with fulcrum_server(env, "iris", "--no-access-log", "--record", "none", "--no-monitor") as s:
        fq = wrk(s.port, "/v1/models/iris/predict", iris, C, D)
    with other_server(env, "bare") as s:
        bare = wrk(s.port, "/predict", iris, C, D)
    print(_row("fulcrum (defaults)", f))
    print(_row("fulcrum (no log, --record none, no monitor)", fq))
    print(_row("bare starlette", bare))
    print(f"  => fulcrum/bare {f['ok_rps'] / bare['ok_rps']:.0%} with defaults, {fq['ok_rps'] / bare['ok_rps']:.0%} lean\n")


def overload(env: dict[str, str], home: str, D: float, far: int, deadline_s: float) -> None:
    print(f"(3) overload, default model (breast_cancer), deadline --timeout {deadline_s:g} s")
    body = {"records": [_row_of(home, "cancer")]}
    path = "/v1/models/cancer/predict"
    with fulcrum_server(env, "cancer", "--no-access-log", "--timeout", str(deadline_s)) as s:
        sweep = {c: wrk(s.port, path, body, c, 3.0)["ok_rps"] for c in (1, 2, 4, 8, 16, 32, 64)}
        top = max(sweep.values())
        C = min(c for c, v in sweep.items() if v >= 0.9 * top)
        print("  sweep (ok/s by connections): " + ", ".join(f"{c}: {v:.0f}" for c, v in sweep.items())
              + f"  -> capacity at C = {C} connections")
        runs: dict[int, list[dict[str, Any]]] = {C: [], 10 * C: []}
        seen: dict[int, dict[int, list[float]]] = {C: {}, 10 * C: {}}  # the probe's latencies by status
        for n in (C, 10 * C, C, 10 * C):  # interleaved rounds
            with Probe(s.port, path, body) as probe:
                runs[n].append(wrk(s.port, path, body, n, D, timeout_s=deadline_s + 20))
            for status, xs in probe.lat.items():
                seen[n].setdefault(status, []).extend(xs)
        far_run = None
        if far:
            with Probe(s.port, path, body) as far_probe:
                far_run = wrk(s.port, path, body, far * C, D, timeout_s=deadline_s + 20)
    for i in range(2):
        print(_row(f"round {i + 1}: at capacity, {C} connections", runs[C][i]))
        print(_row(f"round {i + 1}: 10x overload, {10 * C} connections", runs[10 * C][i]))
    cap = statistics.mean(r["ok_rps"] for r in runs[C])
    over = statistics.mean(r["ok_rps"] for r in runs[10 * C])
    print(f"  => successful throughput at 10x: {over / cap:.0%} of at-capacity (mean of 2 rounds each; goal >= 80%)")

    def deadline_line(label: str, rs: list[dict[str, Any]], lat: dict[int, list[float]]) -> None:
        slowest = max(r["max_us"] for r in rs) / 1e6
        n504 = sum(r["codes"].get(504, 0) for r in rs)
        n503 = sum(r["codes"].get(503, 0) for r in rs)
        timeouts = sum(r["errors"]["timeout"] for r in rs)
        rej = lat.get(503, [])
        errors = {k: sum(r["errors"][k] for r in rs) for k in ("connect", "read", "write")}
        print(f"  {label}: slowest answer {slowest:.2f} s (deadline {deadline_s:g} s), {n504} answered 504, "
              f"{timeouts} client timeouts, socket errors {errors}; {n503} rejected 503"
              + (f", probe saw {len(rej)} 503s: p50 {_pct(rej, .5) * 1e3:.1f} ms, p99 {_pct(rej, .99) * 1e3:.1f} ms"
                 if rej else ", none seen by the probe"))

    deadline_line("10x", runs[10 * C], seen[10 * C])
    if far_run is not None:
        print(_row(f"{far}x overload, {far * C} connections", far_run))
        print(f"  => successful throughput at {far}x: {far_run['ok_rps'] / cap:.0%} of at-capacity")
        deadline_line(f"{far}x", [far_run], far_probe.lat)
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    ap.add_argument("--clients", type=int, default=32, help="connections for (1) and (2)")
    ap.add_argument("--only", default="1,2,3")
    ap.add_argument("--wide", default="2048,2048,2048", help="hidden sizes of the wide MLP of (1)")
    ap.add_argument("--far", type=int, default=100, help="also run (3) at this many times C (0: skip)")
    ap.add_argument("--timeout", type=float, default=10.0, help="the server's request deadline in (3)")
    args = ap.parse_args()
    only = {int(x) for x in args.only.split(",")}
    if shutil.which("wrk") is None:
        sys.exit("bench_serve needs wrk (a native HTTP load generator): apt-get install wrk")

    import fulcrum
    from fulcrum.artifact import Registry

    home = tempfile.mkdtemp(prefix="fulcrum-bench-serve-")
    env = {**os.environ, "FULCRUM_HOME": home, "PYTHONUNBUFFERED": "1"}
    reg = Registry(Path(home) / "registry")
    print("training the benchmark models ...", flush=True)
    fulcrum.train("builtin:breast_cancer", name="cancer", progress=False, registry=reg)  # the default model
    if 1 in only:
        fulcrum.train("builtin:breast_cancer", name="wide", model="mlp", epochs=1,
                      hidden_sizes=[int(h) for h in args.wide.split(",")], progress=False, registry=reg)
    if 2 in only:
        fulcrum.train("builtin:iris", name="iris", model="linear", progress=False, registry=reg)
    import uvicorn.config

    http_impl = "httptools" if uvicorn.config.HTTP_PROTOCOLS and _has("httptools") else "h11"
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; uvicorn HTTP parser: {http_impl}; "
          f"loop: {'uvloop' if _has('uvloop') else 'asyncio'}; load: wrk, 1 thread, keep-alive; {args.duration:g} s per run\n")
    try:
        if 1 in only:
            versus_baseline(env, home, args.clients, args.duration, args.wide)
        if 2 in only:
            http_overhead(env, home, args.clients, args.duration)
        if 3 in only:
            overload(env, home, args.duration, args.far, args.timeout)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
