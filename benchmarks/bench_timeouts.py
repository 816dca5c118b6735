"""Cost of the slow-client bounds (serve/_timeouts.py): uvicorn's httptools protocol vs Fulcrum's
bounded subclass (two timers per request), same trivial ASGI app, loopback, keep-alive clients.

    python benchmarks/bench_timeouts.py [--rounds 3] [--duration 3] [--clients 32]

Both servers run side by side in their own processes; each round measures both, one right after
the other (the order alternating), so machine noise hits both alike. Prints each round, the
median of the per-round ratios and their range; asserts nothing. The server's CPU time per
request (psutil) is the steadier figure on a shared machine: throughput and p99 also move with
whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import PY, Server, _free_port, closed_loop  # noqa: E402

APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def predict(request):
    await request.body()
    return Response(b'{"ok":true}', media_type="application/json")

app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
http, port = sys.argv[1], int(sys.argv[2])
config = uvicorn.Config(app, port=port, log_level="error", access_log=False, http=http)
config.fulcrum_read_bounds = (10.0, 30.0)
uvicorn.Server(config).run()
"""

PROTOCOLS = {"uvicorn httptools": "httptools", "fulcrum bounded": "fulcrum.serve._timeouts:BoundedHttpToolsProtocol"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--clients", type=int, default=32)
    args = ap.parse_args()
    servers = {}
    for name, http in PROTOCOLS.items():
        port = _free_port()
        servers[name] = Server([PY, "-c", APP, http, str(port)], port, "", {}, name)
    rps: dict[str, list[float]] = {name: [] for name in servers}
    p99: dict[str, list[float]] = {name: [] for name in servers}
    cpu_us: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for r in range(args.rounds):
            order = list(servers.items()) if r % 2 == 0 else list(servers.items())[::-1]
            for name, srv in order:
                proc = psutil.Process(srv.proc.pid)
                before = sum(proc.cpu_times()[:2])
                res = asyncio.run(closed_loop(srv.port, "/predict", {"x": 1}, args.clients, args.duration, warmup=0.0))
                used = sum(proc.cpu_times()[:2]) - before
                rps[name].append(res["rps"])
                p99[name].append(res["p99_ms"])
                cpu_us[name].append(used / max(1, sum(res["codes"].values())) * 1e6)
                print(f"round {r + 1}  {name:<18} {res['rps']:>8.0f} req/s   p99 {res['p99_ms']:6.2f} ms   "
                      f"CPU {cpu_us[name][-1]:6.1f} us/request")
    finally:
        for srv in servers.values():
            srv.stop()
    base_name, ours_name = PROTOCOLS
    cpu_ratios = sorted(o / b for o, b in zip(cpu_us[ours_name], cpu_us[base_name]))
    print(f"server CPU per request bounded/uvicorn per round: median {statistics.median(cpu_ratios):.3f} "
          f"(range {cpu_ratios[0]:.3f}-{cpu_ratios[-1]:.3f}); medians {statistics.median(cpu_us[ours_name]):.1f} vs "
          f"{statistics.median(cpu_us[base_name]):.1f} us")
    ratios = sorted(o / b for o, b in zip(rps[ours_name], rps[base_name]))
    p99_ratios = sorted(o / b for o, b in zip(p99[ours_name], p99[base_name]))
    print(f"throughput bounded/uvicorn per round: median {statistics.median(ratios):.3f} "
          f"(range {ratios[0]:.3f}-{ratios[-1]:.3f}, {len(ratios)} rounds)")
    print(f"p99 bounded/uvicorn per round: median {statistics.median(p99_ratios):.3f} "
          f"(range {p99_ratios[0]:.3f}-{p99_ratios[-1]:.3f})")

if __name__ == "__main__":
    main()
