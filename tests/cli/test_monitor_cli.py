"""`fulcrum monitor` and `fulcrum retrain` end to end on a small built-in model.

The monitor tests run the real server (create_app under uvicorn on 127.0.0.1), send it traffic
and ground truth over HTTP, and then read with `fulcrum monitor` what that server saved: its
monitor snapshots and records. A server that never saved its snapshots fails them."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pandas as pd
import pytest

import fulcrum
from fulcrum.artifact import Registry
from fulcrum.cli import main
from fulcrum.data import read_table
from fulcrum.serve import FeedbackStore


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def iris():
    """iris@1 (linear) in this test's registry, and the labelled data."""
    fulcrum.train("builtin:iris", model="linear", progress=False)
    return read_table("builtin:iris")


class RealServer:
    """``fulcrum serve REF`` in this process: the app under uvicorn on 127.0.0.1 in a thread."""

    def __init__(self, ref: str, **settings) -> None:
        import uvicorn

        from fulcrum.serve import ServeSettings, create_app
        from fulcrum.serve._server import uvicorn_config

        settings = ServeSettings(**{"poll_interval_s": 0.2, "usage_flush_s": 0.2, "access_log": False, **settings})
        self.app = create_app([ref], settings, registry=Registry())
        self.server = uvicorn.Server(uvicorn_config(self.app, settings, port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started or not self.app.state.fulcrum.models.ready:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True  # a clean shutdown: the server flushes what it holds
        self.thread.join(timeout=30)


def send(c: httpx.Client, rows: pd.DataFrame, truth: list | None, shift: float = 0.0, batch: str = "a") -> None:
    """Predict in requests of 5 rows over HTTP, then send the ground truth by request id."""
    X = rows.drop(columns=["target"]).reset_index(drop=True)
    X["petal length (cm)"] += shift
    records = X.to_dict("records")
    for i in range(0, len(X), 5):
        r = c.post("/v1/models/iris/predict", json={"records": records[i:i + 5]}, headers={"X-Request-ID": f"{batch}-{i}"})
        assert r.status_code == 200, r.text
    if truth is not None:
        for i in range(0, len(X), 5):
            r = c.post("/v1/models/iris/feedback", json={"id": f"{batch}-{i}", "truth": truth[i:i + 5]})
            assert r.status_code == 200, r.text


def record(rows: pd.DataFrame, truth: list | None, ref: str = "iris", batch: str = "a") -> None:
    """Predictions and ground truth recorded through the store's API (for the retrain tests)."""
    reg = Registry()
    pkg = reg.load(ref)
    X = rows.drop(columns=["target"]).reset_index(drop=True)
    out = fulcrum.load(ref).predict(X)
    records = X.to_dict("records")
    with FeedbackStore(reg) as store:
        for i in range(0, len(X), 5):
            store.record(pkg.name, pkg.version, f"{batch}-{i}", records[i:i + 5], out.iloc[i:i + 5].to_dict("records"))
            if truth is not None:
                store.add_feedback(pkg.name, f"{batch}-{i}", truth[i:i + 5])


def test_monitor_before_anything_is_served(iris, capsys):
    rc, out, _ = run(capsys, "monitor", "iris")
    assert rc == 0
    assert "nothing served yet" in out and "no feedback yet" in out and "no retrain needed" in out
    rc, out, _ = run(capsys, "monitor", "iris", "--json")
    report = json.loads(out)
    assert rc == 0 and report["served"] is False and report["snapshot"] is None
    assert report["live_metric"]["n"] == 0 and report["recommendation"]["retrain"] is False


def test_monitor_healthy_then_drifted(iris, capsys):
    rows = iris.sample(150, random_state=0)
    with RealServer("iris") as c:
        send(c, rows, rows["target"].tolist())
    rc, out, _ = run(capsys, "monitor", "iris@1")
    assert rc == 0
    assert "petal length (cm)" in out and "out-of-distribution: 0.0%" in out
    assert "live accuracy" in out and "150 feedback row(s)" in out and "no retrain needed" in out
    report = json.loads(run(capsys, "monitor", "iris@1", "--json")[1])
    assert report["origin"] == "server" and report["snapshot"]["counts"]["rows_observed"] == 150
    assert report["snapshot"]["status"] == "ok" and report["live_metric"]["n"] == 150
    assert report["predictions"] == 150
    assert report["trained_metric"]["accuracy"] == report["recommendation"]["checks"]["metric"]["trained"]

    # a restarted server then sees shifted inputs, and its predictions turn out wrong
    wrong = rows["target"].map({"setosa": "virginica", "versicolor": "setosa", "virginica": "versicolor"}).tolist()
    with RealServer("iris") as c:
        send(c, rows, wrong, shift=5.0, batch="b")
    rc, out, _ = run(capsys, "monitor", "iris", "--json")
    rec = json.loads(out)["recommendation"]
    assert rc == 0 and rec["retrain"] is True
    assert rec["checks"]["drift"]["columns"] == ["petal length (cm)"] and rec["checks"]["ood"]["crossed"]
    assert rec["checks"]["metric"]["crossed"] and rec["data"] == {"source": "builtin:iris", "feedback_rows": 300}
    rc, out, _ = run(capsys, "monitor", "iris")
    assert "RETRAIN" in out and "out-of-distribution inputs" in out and "fulcrum retrain iris@1" in out
    assert rec["checks"]["drift"]["crossed"] is False  # 1 of 4 columns is below the 30 % share


def test_monitor_reads_a_records_db_given_to_the_server(iris, tmp_path, capsys):
    db = tmp_path / "elsewhere.sqlite"
    rows = iris.sample(40, random_state=2)
    with RealServer("iris", records_db=str(db)) as c:
        send(c, rows, rows["target"].tolist())
    report = json.loads(run(capsys, "monitor", "iris", "--json")[1])
    assert report["snapshot"] is None and report["live_metric"]["n"] == 0  # not in the default place
    report = json.loads(run(capsys, "monitor", "iris", "--json", "--records-db", db)[1])
    assert report["snapshot"]["counts"]["rows_observed"] == 40 and report["live_metric"]["n"] == 40


def test_monitor_a_file_offline(iris, tmp_path, capsys):
    path = tmp_path / "new.csv"
    iris.assign(**{"sepal width (cm)": iris["sepal width (cm)"] + 3}).to_csv(path, index=False)
    rc, out, _ = run(capsys, "monitor", "iris", "--data", path, "--json")
    snap = json.loads(out)["snapshot"]
    assert rc == 0 and snap["drifted_columns"] == ["sepal width (cm)"] and snap["ood"]["rate"] > 0.5


def test_retrain_needs_feedback_unless_forced(iris, capsys):
    rc, _, err = run(capsys, "retrain", "iris")
    assert rc == 1 and "nothing new to learn" in err.lower() and "--force" in err
    assert [r["version"] for r in Registry().list()] == [1]
    rc, out, _ = run(capsys, "retrain", "iris", "--force", "--json")
    report = json.loads(out)
    assert rc == 0 and report["new"] == "iris@2" and report["feedback_rows"] == 0
    assert "feedback" not in report["comparison"] and report["comparison"]["test"]["rows"] == 30


def test_retrain_with_feedback_and_alias(iris, capsys):
    fulcrum.Registry().set_alias("iris@1", "production")
    rows = iris.sample(60, random_state=1)
    record(rows, rows["target"].tolist(), ref="iris@production")
    rc, out, err = run(capsys, "retrain", "iris@production", "--alias", "production")
    assert rc == 0, err
    assert "iris@1 -> iris@2" in out and "held-out test split of iris@1 (30 rows)" in out
    assert "feedback rows" in out and "accuracy" in out and "iris@production -> version 2" in out
    reg = Registry()
    assert reg.aliases("iris") == {"production": 2}
    m = reg.load("iris@2").manifest
    assert m["lineage"]["parent"] == "iris@1" and m["data"]["feedback_rows"] == 60 and m["data"]["source"] == "builtin:iris"
    assert m["config"]["model"] == "linear"  # the stored config was reused


def test_retrain_not_promoted_when_worse(iris, capsys):
    # many confidently wrong labels teach the new version the wrong mapping
    rows = pd.concat([iris] * 3, ignore_index=True)
    wrong = rows["target"].map({"setosa": "virginica", "versicolor": "setosa", "virginica": "versicolor"}).tolist()
    record(rows, wrong)
    fulcrum.Registry().set_alias("iris@1", "production")
    rc, out, _ = run(capsys, "retrain", "iris", "--alias", "production", "--json")
    report = json.loads(out)
    assert rc == 0 and report["not_worse"]["test"] is False and report["alias"]["moved"] is False
    test = report["comparison"]["test"]
    assert test["new"]["accuracy"] < test["current"]["accuracy"]
    assert Registry().aliases("iris") == {"production": 1}


def test_retrain_bad_inputs(tmp_path, capsys):
    rc, _, err = run(capsys, "retrain", "nosuch")
    assert rc == 1 and "No model named 'nosuch'" in err
    rc, _, err = run(capsys, "monitor", "nosuch")
    assert rc == 1 and "No model named 'nosuch'" in err
    path = tmp_path / "flowers.csv"
    read_table("builtin:iris").to_csv(path, index=False)
    fulcrum.train(str(path), target="target", model="linear", progress=False)
    path.unlink()
    rc, _, err = run(capsys, "retrain", "flowers", "--force")
    assert rc == 1 and str(path) in err and "Restore the data at that path" in err
