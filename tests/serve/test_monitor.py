"""Monitor: OOD score, drift (PSI / KS) over a bounded window, snapshots in SQLite."""

from __future__ import annotations

import json
import sqlite3
import threading

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import infer_schema, profile_frame, read_table, train_val_test_split
from fulcrum.errors import ConfigError
from fulcrum.serve import Monitor, load_latest_snapshot


def _split(name: str, target: str):
    df = read_table(f"builtin:{name}")
    df = df[df[target].notna()].reset_index(drop=True)
    schema = infer_schema(df, target)
    train, val, test = train_val_test_split(df, target, seed=0)
    fresh = pd.concat([val, test], ignore_index=True).drop(columns=[target])
    return profile_frame(train, schema), train.drop(columns=[target]), fresh


@pytest.fixture(scope="module")
def penguins():
    return _split("penguins", "species")  # 4 numeric, 2 categorical (island, sex), missing values


@pytest.fixture(scope="module")
def cancer():
    return _split("breast_cancer", "target")  # 30 numeric columns


# ---------------------------------------------------------------- OOD score


def test_ood_low_for_training_like_rows(penguins, cancer):
    for profile, train, fresh in (penguins, cancer):
        mon = Monitor(profile)
        for rows in (train, fresh):
            scores = mon.score(rows)
            assert scores.shape == (len(rows),)
            assert ((scores >= 0) & (scores <= 1)).all()
            assert np.median(scores) == 0.0  # inside every column's [p1, p99]
            assert mon.is_ood(scores).mean() <= 0.05


def test_ood_high_far_outside_training_range(penguins):
    profile, _, fresh = penguins
    mon = Monitor(profile)
    stats = profile["columns"]["bill_length_mm"]
    rows = fresh.head(3).copy()
    rows["bill_length_mm"] = stats["max"] + 10 * stats["std"]  # far above the range
    scores = mon.score(rows)
    assert (scores > 0.95).all() and mon.is_ood(scores).all()
    below = fresh.head(1).assign(body_mass_g=-5000.0)
    assert mon.score(below)[0] > 0.95
    # just past p99 is a little surprising, not OOD
    edge = fresh.head(1).assign(bill_length_mm=stats["quantiles"]["p99"] + 0.01)
    assert 0 < mon.score(edge)[0] < 0.05


def test_ood_unseen_category_and_missing_values(penguins):
    profile, _, fresh = penguins
    mon = Monitor(profile)
    row = fresh.iloc[[0]].copy()
    base = mon.score(row)[0]
    assert mon.score(row.assign(island="Atlantis"))[0] == 1.0
    assert mon.score(row.assign(bill_length_mm=np.nan, island=None))[0] == base  # missing adds nothing
    assert mon.score(row.drop(columns=["sex"]))[0] == base  # an absent column is all missing


def test_score_accepts_frame_records_columns_and_one_row(penguins):
    profile, _, fresh = penguins
    mon = Monitor(profile)
    rows = fresh.head(5).copy()
    rows.loc[1, "flipper_length_mm"] = 400.0
    expected = mon.score(rows)
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    assert np.allclose(mon.score(records), expected)
    assert np.allclose(mon.score({c: rows[c].tolist() for c in rows.columns}), expected)
    assert np.allclose(mon.score(records[1]), expected[[1]])
    assert expected[1] > 0.5 and mon.column_scores(rows)["flipper_length_mm"][1] == expected[1]
    assert mon.score(rows.astype(str).assign(sex="male")).shape == (5,)  # strings coerce, never raise


# ---------------------------------------------------------------- drift


def test_no_drift_on_fresh_same_distribution_data(penguins, cancer):
    for profile, _, fresh in (penguins, cancer):
        mon = Monitor(profile)
        mon.observe(fresh)
        drift = mon.drift()
        assert set(drift) == set(profile["columns"])
        judged = [d for d in drift.values() if d["status"] != "insufficient data"]
        assert judged and all(d["status"] == "ok" and not d["drifted"] for d in judged), drift
        assert all(d["n"] >= 100 for d in judged)
        assert mon.snapshot()["drifted_share"] == 0.0


def test_numeric_shift_of_two_std_is_drift(cancer):
    profile, _, fresh = cancer
    col = "mean radius"
    shifted = fresh.assign(**{col: fresh[col] + 2 * profile["columns"][col]["std"]})
    mon = Monitor(profile)
    mon.observe(shifted)
    d = mon.drift()
    assert d[col]["drifted"] and d[col]["status"] == "drift"
    assert d[col]["psi"] > 1.0 and d[col]["ks"] > 0.5 and d[col]["psi_pvalue"] < 1e-6 and d[col]["ks_pvalue"] < 1e-6
    others = [c for c in d if c != col and d[c]["drifted"]]
    assert others == []
    snap = mon.snapshot()
    assert snap["drifted_columns"] == [col] and snap["status"] == "drift"


def test_categorical_drift(penguins):
    profile, _, fresh = penguins
    mon = Monitor(profile)
    mon.observe(fresh.assign(island="Biscoe"))  # every penguin from one island
    d = mon.drift()
    assert d["island"]["drifted"] and d["island"]["psi"] > 0.5
    assert d["island"]["top_window"] == {"Biscoe": 1.0}
    assert not d["sex"]["drifted"]
    mon2 = Monitor(profile)
    mon2.observe(fresh.assign(island=["Atlantis", "Biscoe"] * (len(fresh) // 2) + ["Biscoe"] * (len(fresh) % 2)))
    assert mon2.drift()["island"]["other_share"] == pytest.approx(0.5, abs=0.01) and mon2.drift()["island"]["drifted"]


def test_missing_share_counts_as_drift(cancer):
    profile, _, fresh = cancer
    mon = Monitor(profile, min_rows=50)
    mon.observe(fresh.assign(**{"mean texture": np.where(np.arange(len(fresh)) % 2 == 0, np.nan, fresh["mean texture"])}))
    d = mon.drift()["mean texture"]
    assert d["missing"] == {"train": 0.0, "window": pytest.approx(0.5, abs=0.01)} and d["drifted"]


def test_no_verdict_below_min_rows(penguins):
    profile, _, fresh = penguins
    mon = Monitor(profile)
    assert mon.snapshot()["status"] == "insufficient data"
    mon.observe(fresh.head(60).assign(island="Biscoe", bill_length_mm=500.0))
    d = mon.drift()
    assert all(v["status"] == "insufficient data" and v["drifted"] is False and v["psi"] is None for v in d.values())
    snap = mon.snapshot()
    assert snap["status"] == "insufficient data" and snap["drifted_share"] is None
    assert snap["counts"]["rows_in_window"] == 60 and snap["ood"]["rate"] == 1.0


def test_window_is_bounded_and_slides(cancer):
    profile, _, fresh = cancer
    col = "mean radius"
    shifted = fresh.assign(**{col: fresh[col] + 3 * profile["columns"][col]["std"]})
    mon = Monitor(profile, window=150)
    for start in range(0, len(fresh), 32):
        mon.observe(fresh.iloc[start:start + 32])
    assert mon.rows_in_window == 150 and not mon.drift()[col]["drifted"]
    mon.observe(shifted)  # more rows than the window: only the newest 150 stay
    assert mon.drift()[col]["drifted"] and mon.drift()[col]["n"] == 150
    mon.observe(fresh.iloc[:150])
    assert not mon.drift()[col]["drifted"]
    snap = mon.snapshot()
    assert snap["counts"]["rows_observed"] == 2 * len(fresh) + 150 and snap["window"]["rows"] == 150
    assert all(m.buffer.shape == (150,) for m in mon._monitors.values()) and mon._ood.shape == (150,)


def test_observe_is_thread_safe_and_reuses_scores(penguins):
    profile, _, fresh = penguins
    mon = Monitor(profile, window=500)
    records = fresh.astype(object).where(fresh.notna(), None).to_dict("records")

    def worker():
        for i in range(0, 100, 10):
            batch = records[i:i + 10]
            mon.observe(batch, scores=mon.score(batch))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mon.snapshot()["counts"]["rows_observed"] == 400 and mon.rows_in_window == 400
    with pytest.raises(Exception, match="scores"):
        mon.observe(records[:3], scores=[0.0])


def test_snapshot_is_json_and_bad_settings_are_refused(penguins):
    profile, _, fresh = penguins
    mon = Monitor(profile, model="p", version=2, data_source="builtin:penguins")
    mon.observe(fresh)
    snap = mon.snapshot()
    assert json.loads(json.dumps(snap, allow_nan=False)) == snap
    assert snap["model"] == "p" and snap["counts"]["rows_in_window"] == len(fresh) and 0 <= snap["ood"]["rate"] <= 1
    for bad in ({"window": 0}, {"psi_threshold": -1}, {"ood_threshold": 2}, {"alpha": 1.5}):
        with pytest.raises(ConfigError):
            Monitor(profile, **bad)


# ---------------------------------------------------------------- persistence


def test_snapshot_round_trip_in_sqlite(penguins, tmp_path):
    profile, _, fresh = penguins
    conn = sqlite3.connect(str(tmp_path / "index.sqlite"))
    assert load_latest_snapshot(conn, "p") is None  # no table yet
    mon = Monitor(profile, model="p", version=1)
    mon.observe(fresh.head(10))
    first = mon.save_snapshot(conn)
    mon.observe(fresh)
    second = mon.save_snapshot(conn, "p", 2)
    latest = load_latest_snapshot(conn, "p")
    assert {k: v for k, v in latest.items() if k != "snapshot_id"} == second
    assert Monitor.load_latest_snapshot(conn, "p", 1)["counts"] == first["counts"]
    assert load_latest_snapshot(conn, "p", 3) is None and load_latest_snapshot(conn, "other") is None
    for _ in range(5):
        mon.save_snapshot(conn, "p", 2, keep=3)
    assert conn.execute("SELECT COUNT(*) FROM monitor_snapshots WHERE version = 2").fetchone()[0] == 3
    other = sqlite3.connect(str(tmp_path / "index.sqlite"))  # another process sees it
    assert load_latest_snapshot(other, "p", 2)["version"] == 2
    conn.close()
    other.close()


def test_from_package(tmp_path):
    import fulcrum
    from fulcrum.artifact import Registry

    reg = Registry(tmp_path / "reg")
    pkg = fulcrum.train("builtin:iris", model="linear", registry=reg, progress=False)
    mon = Monitor.from_package(pkg, window=200, psi_threshold=0.25, ood_threshold=0.6)
    assert (mon.model, mon.version, mon.data_source) == ("iris", 1, "builtin:iris")
    assert mon.window == 200 and mon.psi_threshold == 0.25 and mon.ood_threshold == 0.6
    assert len(mon.columns) == 4
    assert Monitor.from_package(fulcrum.load("iris", registry=reg)).model == "iris"  # a Predictor works too
    rows = read_table("builtin:iris").drop(columns=["target"])
    assert mon.is_ood(mon.score(rows)).mean() < 0.05
    with reg.connect() as conn:
        mon.observe(rows)
        mon.save_snapshot(conn)
        assert load_latest_snapshot(conn, "iris", 1)["counts"]["rows_observed"] == 150
    conn.close()
