"""FeedbackStore (predictions + ground truth in SQLite, live metric, retraining rows) and recommend()."""

from __future__ import annotations

import math
import sqlite3
import threading

import numpy as np
import pytest

from fulcrum.artifact import Registry
from fulcrum.errors import ConfigError, DataError, NotFoundError
from fulcrum.serve import DEFAULT_THRESHOLDS, FeedbackStore, recommend


@pytest.fixture
def registry(tmp_path):
    reg = Registry(tmp_path / "reg")
    inputs = [{"name": "a", "kind": "numeric", "dtype": "float64"}, {"name": "b", "kind": "categorical", "dtype": "object"}]
    reg.register("clf", {"task": {"kind": "classification", "target": "label", "labels": ["x", "y"]}, "inputs": inputs}, {})
    reg.register("reg", {"task": {"kind": "regression", "target": "price"}, "inputs": inputs}, {})
    return reg


def test_live_accuracy_exact(registry):
    with FeedbackStore(registry) as store:
        rows = [{"a": 1.0, "b": "u"}, {"a": 2.0, "b": "v"}, {"a": 3.0, "b": "u"}]
        # dict outputs with the prediction under the target's name (as the server's JSON route answers)
        outs = [{"label": "x", "proba_x": 0.9, "proba_y": 0.1}, {"label": "y", "proba_x": 0.2, "proba_y": 0.8},
                {"label": "x", "proba_x": 0.6, "proba_y": 0.4}]
        assert store.record("clf", 1, "req-1", rows, outs) == 3
        store.record("clf", 1, "req-2", [{"a": 4.0, "b": "v"}], ["y"])
        store.record("clf", 1, "req-3", [{"a": 5.0, "b": "v"}], ["x"])  # no feedback: not counted
        assert store.live_metric("clf") == {"model": "clf", "version": None, "task": "classification", "n": 0,
                                            "accuracy": None}
        store.add_feedback("clf", "req-1", ["x", "x", "x"])  # rows 0 and 2 right, row 1 wrong
        out = store.add_feedback("clf", "req-2", "y")
        assert out == {"model": "clf", "version": 1, "request_id": "req-2", "rows": [0], "stored": 1}
        live = store.live_metric("clf", 1)
        assert live["n"] == 4 and live["accuracy"] == 0.75 and live["task"] == "classification"
        store.add_feedback("clf", "req-1", "y", row=1)  # a correction replaces the row's truth
        assert store.live_metric("clf")["accuracy"] == 1.0
        assert store.live_metric("clf", 2)["n"] == 0
        assert store.counts("clf") == {"predictions": 5, "feedback": 4}


def test_live_mae_rmse_exact(registry):
    with FeedbackStore(registry) as store:
        store.record("reg", 1, "r", [{"a": 1}, {"a": 2}, {"a": 3}], np.array([1.0, 2.0, 4.0]))
        store.add_feedback("reg", "r", [1.0, 3.0, 2.0])  # errors 0, -1, 2
        live = store.live_metric("reg")
        assert live["task"] == "regression" and live["n"] == 3
        assert live["mae"] == pytest.approx(1.0) and live["rmse"] == pytest.approx(math.sqrt(5 / 3))


def test_unknown_request_row_and_bad_truth(registry):
    with FeedbackStore(registry) as store:
        with pytest.raises(NotFoundError, match="request id 'nope'") as info:
            store.add_feedback("clf", "nope", "x")
        assert info.value.http_status == 404 and isinstance(info.value, LookupError)
        store.record("clf", 1, "two", [{"a": 1}, {"a": 2}], ["x", "y"])
        with pytest.raises(NotFoundError):
            store.add_feedback("reg", "two", 1.0)  # the id belongs to another model
        with pytest.raises(NotFoundError, match="row 5"):
            store.add_feedback("clf", "two", "x", row=5)
        with pytest.raises(DataError, match="2 rows"):
            store.add_feedback("clf", "two", "x")
        with pytest.raises(DataError, match="3 truth"):
            store.add_feedback("clf", "two", ["x", "y", "x"])
        with pytest.raises(DataError):
            store.add_feedback("clf", "two", None, row=0)
        with pytest.raises(DataError, match="one output per row"):
            store.record("clf", 1, "bad", [{"a": 1}], ["x", "y"])


def test_feedback_frame_for_retraining(registry):
    with FeedbackStore(registry) as store:
        assert list(store.feedback_frame("clf").columns) == ["a", "b", "label"]  # empty, with the columns
        store.record("clf", 1, "r1", [{"a": 1.5, "b": "u"}, {"a": float("nan"), "b": "v"}], ["x", "y"])
        store.record("clf", 2, "r2", [{"a": 2.5, "b": "w"}], ["y"])
        store.add_feedback("clf", "r1", ["y", "x"])
        store.add_feedback("clf", "r2", "y")
        frame = store.feedback_frame("clf")
        assert list(frame.columns) == ["a", "b", "label"] and len(frame) == 3  # every version
        assert frame["label"].tolist() == ["y", "x", "y"] and np.isnan(frame["a"][1])
        assert list(store.feedback_frame("clf", target="truth").columns) == ["a", "b", "truth"]


def test_plain_sqlite_file_and_connection(tmp_path):
    path = tmp_path / "fb.sqlite"
    with FeedbackStore(path) as store:
        store.record("m", None, "r", [{"a": 1}, {"a": 2}], [0.5, 1.5])
        store.add_feedback("m", "r", [1.0, 1.0])
        assert store.live_metric("m")["task"] == "regression"  # inferred: non-integral numbers
        assert store.live_metric("m", task="regression")["mae"] == pytest.approx(0.5)
        with pytest.raises(ConfigError, match="target"):
            store.feedback_frame("m")
    conn = sqlite3.connect(str(path))
    store = FeedbackStore(conn)
    assert store.live_metric("m")["n"] == 2
    store.close()
    conn.execute("SELECT 1")  # a caller's connection stays open


def test_record_from_threads(registry):
    store = FeedbackStore(registry)

    def worker(k):
        for i in range(20):
            store.record("clf", 1, f"t{k}-{i}", [{"a": i}] * 4, ["x"] * 4)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.counts("clf")["predictions"] == 4 * 20 * 4
    store.close()


# ---------------------------------------------------------------- recommend


def _snap(share=0.0, rate=0.0, status="ok", drifted=()):
    return {"status": status, "drifted_share": share, "drifted_columns": list(drifted), "ood": {"rate": rate},
            "data_source": "builtin:iris"}


def test_recommend_thresholds():
    trained = {"accuracy": 0.95}
    ok_live = {"task": "classification", "n": 50, "accuracy": 0.94}
    rec = recommend(_snap(), ok_live, trained, None)
    assert rec["retrain"] is False and rec["reasons"] == []
    assert all(c["crossed"] is False for c in rec["checks"].values())
    assert rec["data"] == {"source": "builtin:iris", "feedback_rows": 50}

    rec = recommend(_snap(share=0.5, drifted=["a", "b"]), ok_live, trained, {"drifted_share": 0.5})
    assert rec["retrain"] and "input drift" in rec["reasons"][0] and "a, b" in rec["reasons"][0]
    rec = recommend(_snap(rate=0.2), ok_live, trained, {"ood_rate": 0.25})
    assert not rec["retrain"]
    rec = recommend(_snap(rate=0.2), ok_live, trained)
    assert rec["retrain"] and "out-of-distribution" in rec["reasons"][0]
    rec = recommend(_snap(), {"task": "classification", "n": 50, "accuracy": 0.85}, trained)
    assert rec["checks"]["metric"]["drop"] == pytest.approx(0.10) and "live accuracy 0.8500" in rec["reasons"][0]
    assert len(recommend(_snap(share=1, rate=1), {"task": "classification", "n": 50, "accuracy": 0.1}, trained)["reasons"]) == 3


def test_recommend_without_enough_data_and_regression():
    # too few rows: no verdicts, no recommendation, whatever the numbers say
    rec = recommend(_snap(share=1.0, rate=1.0, status="insufficient data"),
                    {"task": "classification", "n": 5, "accuracy": 0.0}, {"accuracy": 1.0})
    assert rec["retrain"] is False and all(c["crossed"] is None for c in rec["checks"].values())
    rec = recommend(None, None, None)
    assert rec["retrain"] is False and rec["data"] == {"source": None, "feedback_rows": 0}
    # regression: MAE rising 10 % over the training MAE crosses a 5 % threshold
    live = {"task": "regression", "n": 40, "mae": 11.0, "rmse": 14.0}
    rec = recommend(_snap(), live, {"mae": 10.0, "r2": 0.5}, data_source="data.csv", feedback_rows=7)
    assert rec["checks"]["metric"]["drop"] == pytest.approx(0.1) and rec["retrain"]
    assert rec["data"] == {"source": "data.csv", "feedback_rows": 7}
    assert not recommend(_snap(), live, {"mae": 10.0}, {"metric_drop": 0.2})["retrain"]
    with pytest.raises(ConfigError, match="Unknown threshold 'ood'"):
        recommend(_snap(), live, {}, {"ood": 0.1})
    assert set(DEFAULT_THRESHOLDS) == {"drifted_share", "ood_rate", "metric_drop", "min_feedback"}


def test_record_many_is_record_for_each(tmp_path):
    from fulcrum.serve import FeedbackStore

    store = FeedbackStore(tmp_path / "fb.sqlite")
    n = store.record_many([
        ("m", 1, "r1", [{"a": 1.0}], ["x"]),
        ("m", 1, "r2", [{"a": 2.0}, {"a": 3.0}], ["y", "x"]),
    ])
    assert n == 3
    store.add_feedback("m", "r2", ["y", "y"])
    store.add_feedback("m", "r1", "x")
    m = store.live_metric("m", task="classification")
    assert m["n"] == 3 and abs(m["accuracy"] - 2 / 3) < 1e-12


# ---------------------------------------------------------------- feedback is checked against the model


def test_store_refuses_a_label_the_model_does_not_know(registry):
    with FeedbackStore(registry) as store:
        store.record("clf", 1, "c", [{"a": 1.0}], ["x"])
        with pytest.raises(DataError, match="'z'.*x, y") as info:
            store.add_feedback("clf", "c", "z")
        assert info.value.http_status == 422
        with pytest.raises(DataError, match="x, y"):
            store.add_feedback("clf", "c", True)
        assert store.counts("clf")["feedback"] == 0  # nothing stored
        store.record("reg", 1, "r", [{"a": 1.0}], [2.0])
        for bad in ("abc", True, float("nan"), float("inf"), "1_0", "0x10"):
            with pytest.raises(DataError, match="finite number"):
                store.add_feedback("reg", "r", bad)
        assert store.counts("reg")["feedback"] == 0
        store.add_feedback("reg", "r", "2.5")  # a plain decimal string is a number
        assert store.live_metric("reg")["mae"] == pytest.approx(0.5)

