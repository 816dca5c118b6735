"""Dashboard: how long the models list takes with 1,000 versions in the registry.

One small package is trained on builtin:penguins (linear), then registered 1,000 times through
the real registry API (``Registry.register``: 40 model names x 25 versions, every package written,
fsynced and indexed as `fulcrum train` does; aliases on some). Measured side by side in this run,
on a real server on 127.0.0.1:

- ``GET /ui/api/models`` cold (the first read builds the list: every manifest from the index,
  priced through the measurement record) and warm (the list cached per index state; what every
  later read costs until the registry changes),
- the same build without the cache (``_ListCache._build``), and the `fulcrum models` way (load
  every package from disk: what the cache and the index's manifest copy avoid),
- the models page in headless Chromium (navigation to its first 50 rows drawn; "Show more" draws
  the next ones), when Chromium and Playwright are present.

Target: list endpoint and page under 300 ms. Prints os.getloadavg() with the figures.

    .venv/bin/python benchmarks/bench_ui.py [--versions 1000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def build_registry(root: Path, n_versions: int) -> object:
    import fulcrum
    from fulcrum.artifact import Registry

    reg = Registry(root)
    t0 = time.perf_counter()
    pkg = fulcrum.train("builtin:penguins", name="seed", model="linear", progress=False, registry=reg)
    files = {f: pkg.read_bytes(f) for f in pkg.files}
    manifest = {k: v for k, v in pkg.manifest.items() if k not in ("files", "name", "version", "created")}
    print(f"trained the seed package in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    names = [f"model-{i:02d}" for i in range(40)]
    done = 1
    while done < n_versions:
        for name in names:
            if done >= n_versions:
                break
            reg.register(name, manifest, files)
            done += 1
    for name in names[:10]:
        reg.set_alias(f"{name}@1", "production")
    print(f"registered {done} versions in {time.perf_counter() - t0:.1f} s")
    return reg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--registry", metavar="DIR", help="keep the generated registry here and reuse it when it already "
                    "holds --versions versions (default: a temporary one, removed)")
    args = ap.parse_args()

    import httpx
    import uvicorn

    from fulcrum.ui import create_standalone_app
    from fulcrum.ui._data import _CACHE, _ListCache

    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    os.environ["FULCRUM_HOME"] = str(tmp / "home")
    try:
        from fulcrum.artifact import Registry

        if args.registry and Path(args.registry).is_dir() and len(Registry(args.registry).list()) == args.versions:
            reg = Registry(args.registry)
            print(f"reusing {args.versions} versions in {reg.root}")
        else:
            reg = build_registry(Path(args.registry) if args.registry else tmp / "registry", args.versions)
        server = uvicorn.Server(uvicorn.Config(create_standalone_app(reg), host="127.0.0.1", port=0,
                                               log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        client = httpx.Client(timeout=120)

        def timed_get(path: str) -> tuple[float, int]:
            t0 = time.perf_counter()
            r = client.get(url + path)
            dt = time.perf_counter() - t0
            assert r.status_code == 200, r.text
            return dt, len(r.content)

        cold, size = timed_get("/ui/api/models")
        body = client.get(url + "/ui/api/models").json()
        assert body["total"] == args.versions, body["total"]
        warm, sorted_q, search = [], [], []
        nocache, load_all = [], []
        for _ in range(args.rounds):  # interleaved rounds: each figure sees the same machine load
            warm.append(timed_get("/ui/api/models")[0])
            sorted_q.append(timed_get("/ui/api/models?sort=usd_per_million&order=desc")[0])
            search.append(timed_get("/ui/api/models?q=model-07")[0])
            t0 = time.perf_counter()
            _ListCache()._build(reg, str(reg.index_path))
            nocache.append(time.perf_counter() - t0)
        for _ in range(max(3, args.rounds // 5)):
            t0 = time.perf_counter()
            from fulcrum.cli.models import _cost_columns

            for row in reg.list():
                _cost_columns(reg, row)
            load_all.append(time.perf_counter() - t0)

        page = None
        chromium = "/usr/bin/chromium" if os.path.isfile("/usr/bin/chromium") else shutil.which("chromium")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            sync_playwright = None
        if chromium and sync_playwright:
            page = []
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                pg = b.new_page()
                for _ in range(args.rounds):
                    t0 = time.perf_counter()
                    pg.goto(url + "/ui/")
                    pg.wait_for_selector("body[data-ready='1']")
                    page.append(time.perf_counter() - t0)
                    assert pg.locator("table#models tbody tr").count() == min(50, args.versions)  # first page
                b.close()
        server.should_exit = True
        thread.join(timeout=10)

        ms = lambda xs: f"{p50(xs) * 1000:8.1f} ms (min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f})"  # noqa: E731
        print(f"\nmodels list, {args.versions} versions, {size / 1e6:.2f} MB of JSON, {args.rounds} rounds, p50:")
        print(f"  GET /ui/api/models  first, right after start   {cold * 1000:8.1f} ms (the list is built at start)")
        print(f"  GET /ui/api/models  warm (cached per index)    {ms(warm)}")
        print(f"  GET ...?sort=usd_per_million&order=desc        {ms(sorted_q)}")
        print(f"  GET ...?q=model-07 (search)                    {ms(search)}")
        print(f"  list built without the cache (in process)      {ms(nocache)}")
        print(f"  `fulcrum models` way (load every package)      {ms(load_all)}")
        if page is not None:
            print(f"  models page in Chromium (first 50 rows drawn) {ms(page)}")
        else:
            print("  models page: skipped (no Chromium or no playwright)")
        print(f"  cache saves {p50(nocache) / p50(warm):.1f}x against rebuilding; target < 300 ms: endpoint "
              f"{'met' if p50(warm) < 0.3 else 'MISSED'}" + (f", page {'met' if p50(page) < 0.3 else 'MISSED'}"
                                                           if page is not None else ""))
        print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"{os.cpu_count()} CPUs")
    finally:
        _CACHE.__init__()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
