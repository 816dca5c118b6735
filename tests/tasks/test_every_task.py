"""Every registered task, walked as a user walks it, from the task's own small example:

train (CLI) -> a verified package in a registry -> load + predict (Python and CLI, same answers) -> optimize (a
variant built and measured) -> a real server on 127.0.0.1 answering requests built from the task's request schema
(friendly records, the task's shorthand, v2 tensors) -> costs (`fulcrum costs`: training cost, the measured
variants, the served traffic from the usage ledger).

Nothing here names a task: a new task registered in ``fulcrum.tasks`` is walked the same way.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import fulcrum
from fulcrum.artifact import Registry
from fulcrum.cli import main
from fulcrum.optimize import BenchSettings, OptimizeOptions, optimize_package
from fulcrum.tasks import detect_task, get_task, task_names

FAST_BENCH = BenchSettings(warmup=2, rounds=3, round_s=0.0, min_calls_b1=5, min_calls_big=2, batch=32)
ROWS = 12  # rows predicted and served


class Server:
    """``fulcrum serve NAME`` in this process: the app under uvicorn (the real server configuration) on
    127.0.0.1, a free port, in a thread; stopped cleanly on exit (it flushes its usage ledger then).
    ``settings_kw``: other ServeSettings (e.g. ``max_body_bytes``)."""

    def __init__(self, name: str, registry: Registry, **settings_kw) -> None:
        import uvicorn

        from fulcrum.serve import ServeSettings, create_app
        from fulcrum.serve._server import uvicorn_config

        settings = ServeSettings(poll_interval_s=0.2, usage_flush_s=0.2, access_log=False, **settings_kw)
        self.app = create_app([name], settings, registry=registry)
        self.server = uvicorn.Server(uvicorn_config(self.app, settings, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 60
        models = self.app.state.fulcrum.models
        while not self.server.started or not models.ready:
            assert not models.failed, f"the server could not load the model: {models.failed}"
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def example_source(task, tmp: Path) -> tuple[str, pd.DataFrame]:
    """The task's example as a file the CLI reads (a DataFrame is written as CSV), and as a table."""
    ex = task.example()
    if isinstance(ex.data, pd.DataFrame):
        path = tmp / f"{task.name}_example.csv"
        ex.data.to_csv(path, index=False)
        source = str(path)
    else:
        source = str(ex.data)
    return source, task.read(source)


def cell(value):
    """A table cell as JSON: numpy scalars as Python values, NaN as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def test_every_task_is_listed_by_fulcrum_tasks(capsys):
    rc, out, _ = cli(capsys, "tasks", "--json")
    assert rc == 0 and [t["name"] for t in json.loads(out)] == task_names()
    assert len(task_names()) >= 2 and task_names()[-1] == "tabular"  # the fallback is asked last


@pytest.mark.parametrize("name", task_names())
def test_train_package_predict_optimize_serve_costs(name, tmp_path, capsys):
    task = get_task(name)
    missing = [p for p in task.example_programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"the {name} example needs {', '.join(missing)} (e.g. apt-get install {' '.join(missing)})")
    ex = task.example()
    source, frame = example_source(task, tmp_path)
    root = tmp_path / "registry"
    reg = Registry(root)
    model = f"every_{name}"

    # the example is this task's kind of data: `fulcrum train` gives it to this task unasked
    assert detect_task(frame, ex.target) is task

    # ---- train (CLI), the example's options through --set
    options = [f"--set={k}={json.dumps(v)}" for k, v in ex.options.items()]
    rc, out, err = cli(capsys, "train", source, "--target", ex.target, "--name", model, "--no-progress",
                       "--registry", root, *options)
    assert rc == 0, err
    assert f"({name} task)" in out and f"package {model}@1" in out

    # ---- a verified package: the task's answers are in its manifest
    pkg = reg.load(model)  # checksums verified
    m = pkg.manifest
    assert m["task"]["workload"] == name and m["task"]["target"] == ex.target
    assert pkg.read_bytes("model.onnx")[:2]  # one graph from raw inputs
    fields = task.request_schema(m)
    assert fields and {f.name for f in fields} == {str(i["name"]) for i in m["inputs"]}
    assert m["metrics"]["primary"]["name"] in m["metrics"]["test"]
    flops, how = task.flops_per_prediction(m)
    assert flops > 0 and how

    # ---- load + predict: Python and CLI agree
    rows = (frame.drop(columns=[ex.target]) if ex.requests is None else ex.requests).head(ROWS).reset_index(drop=True)
    n_rows = len(rows)
    predictor = fulcrum.load(model, registry=reg)
    py = predictor.predict(rows)
    assert len(py) == n_rows and "prediction" in py.columns
    inputs = tmp_path / "inputs.csv"
    rows.to_csv(inputs, index=False)
    output = tmp_path / "predictions.csv"
    rc, _, err = cli(capsys, "predict", model, inputs, "-o", output, "--no-progress", "--registry", root)
    assert rc == 0, err
    from_cli = pd.read_csv(output)
    # an empty prediction (a transcriber's "") reads back from CSV as missing, like a missing value
    assert [_blank(v) for v in from_cli["prediction"]] == [_blank(v) for v in py["prediction"]]

    # ---- optimize: the first optimization the task offers, built and measured beside the parent
    kinds, why_not = task.variant_kinds(m)
    assert kinds, f"{name} offers no optimization at all: {why_not}"
    report = optimize_package(model, registry=reg, variants=[kinds[0].kind],
                              options=OptimizeOptions(bench=FAST_BENCH))
    assert report.measured and report.built, report.skipped
    vid = report.built[0]
    measured = reg.load(model).manifest["variants"]
    for key in ("base", vid):
        entry = measured[key]
        assert _recorded(entry["latency_ms"]["b1"]["p50"]), (key, entry)
    assert m["metrics"]["primary"]["name"] in measured[vid]["metrics"]
    variant = fulcrum.load(model, registry=reg, variant=vid).predict(rows)
    assert len(variant) == n_rows

    # ---- serve: requests built from the task's request schema, answered by a real server
    records = [{f.name: cell(r[f.name]) for f in fields} for r in rows.to_dict("records")]
    v2 = {"inputs": [{"name": f.name, "datatype": f.v2[0], "shape": [n_rows], "data": [rec[f.name] for rec in records]}
                     for f in fields]}
    short = task.shorthand(m)
    with Server(model, reg) as c:
        r = c.post(f"/v1/models/{model}/predict", json={"records": records})
        assert r.status_code == 200, r.text
        served = [str(p) for p in r.json()["predictions"]]
        assert served == py["prediction"].astype(str).tolist()
        r = c.post(f"/v2/models/{model}/infer", json=v2)
        assert r.status_code == 200, r.text
        first = r.json()["outputs"][0]
        data = first["data"]
        if len(first["shape"]) == 2:  # one row of ids per input row (a recommender's top k; "" pads a shorter row)
            w = first["shape"][1]
            data = [[x for x in data[i * w:(i + 1) * w] if x != ""] for i in range(first["shape"][0])]
        assert [str(p) for p in data] == served
        sent = 2 * n_rows
        if short is not None:
            key, field = short
            r = c.post(f"/v1/models/{model}/predict", json={key: [rec[field] for rec in records]})
            assert r.status_code == 200, r.text
            assert [str(p) for p in r.json()["predictions"]] == served
            sent += n_rows
        meta = c.get(f"/v2/models/{model}").json()
        assert [i["name"] for i in meta["inputs"]] == [f.name for f in fields]

    # ---- costs: training, the measured variants and the served traffic, from the ledger
    rc, out, err = cli(capsys, "costs", model, "--json", "--registry", root)
    assert rc == 0, err
    costs = json.loads(out)
    assert _recorded(costs["training"]["wall_s"]) and _recorded(costs["training"]["usd"])
    assert {"base", vid} <= set(costs["measurements"])
    assert costs["live"]["predictions"] == sent and _recorded(costs["live"]["compute_s"])  # what the server did


def _blank(value) -> str:
    """A prediction as text, a missing one (NaN) as ""."""
    return "" if isinstance(value, float) and value != value else str(value)


def _recorded(value) -> bool:
    """A measured figure was stored as a number (its size belongs to benchmarks/, never to a test)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
