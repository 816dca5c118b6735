"""The recommend task's second half, driven through the CLI and a real server on 127.0.0.1 with small generated
data: ALS (the ``implicit`` library) exported into the same graph, explicit ratings (RMSE against the bias
baseline), item-feature cold start for items and popularity for users (stated per row), ``fulcrum evaluate`` on
held-out interactions, the built-in ``interactions``, and bad tables refused with nothing written."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from fulcrum.artifact import Registry
from fulcrum.data import builtin_info
from fulcrum.tasks.recommend._data import make_interactions, make_item_features, true_affinity

from test_every_task import Server, cli

NU, NI = 400, 250
NEW = [f"i{i:04d}" for i in range(0, NI, 10)]  # items left out of the interactions: known from their features only


def _written(root, name) -> bool:
    return root.exists() and any(p.name.startswith(name) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """ALS trained through the CLI on interactions without the NEW items, with an item features table for all."""
    root = tmp_path_factory.mktemp("cold")
    frame = make_interactions(n_users=NU, n_items=NI, per_user=(8, 30), seed=0)
    frame[~frame["item"].isin(NEW)].to_csv(root / "train.csv", index=False)
    make_item_features(NU, NI).to_csv(root / "features.csv", index=False)
    from fulcrum.cli import main

    rc = main(["train", str(root / "train.csv"), "--name", "cold", "--registry", str(root / "reg"), "--no-progress",
               "--set=model=als", f"--set=item_features={root / 'features.csv'}"])
    assert rc == 0
    reg = Registry(root / "reg")
    return reg, reg.load("cold")


def test_als_factors_are_the_graph(cold):
    _, pkg = cold
    m = pkg.manifest
    assert m["model"]["family"] == "als" and m["model"]["library"].startswith("implicit")
    c = m["metrics"]["candidates"]
    assert c["als"]["test"]["ndcg@10"] > 1.3 * c["popularity"]["test"]["ndcg@10"], c
    assert m["onnx"]["rows_off"] == 0 and m["onnx"]["max_abs_diff"] < 1e-4  # the graph's top 10 = numpy's, per user
    grid = m["model"]["training"]["grid"]
    assert len(grid) == 9 and max(g["validation_ndcg@10"] for g in grid) == pytest.approx(c["als"]["validation"]["ndcg@10"])


def test_new_items_are_scored_from_their_features(cold):
    _, pkg = cold
    m = pkg.manifest
    assert m["task"]["n_items"] == NI and m["model"]["item_features"]["feature_only_items"] == len(NEW)
    assert "features" in m["task"]["cold_start_items"] and "popularity" in m["task"]["cold_start"]
    sess = ort.InferenceSession(pkg.read_bytes("model.onnx"))
    users = [f"u{u:04d}" for u in range(0, NU, 4)]
    items, scores, basis = sess.run(None, {"user": np.array(users, object), "k": np.full(len(users), NI, np.int64)})
    aff = true_affinity(NU, NI)
    got, truth = [], []
    for r, u in enumerate(users):
        for it, sc in zip(items[r], scores[r]):
            if it in NEW:
                got.append(sc)
                truth.append(aff[int(u[1:]), int(it[1:])])
    assert len(got) == len(users) * len(NEW)  # every new item reaches every known user's ranking
    assert np.corrcoef(got, truth)[0, 1] > 0.5  # ... in the order of the user's (hidden) taste for it
    assert set(basis) == {"personalized"}


def test_server_cold_users_and_items_optional_k_and_v2(cold):
    reg, _ = cold
    with Server("cold", reg) as c:
        r = c.post("/v1/models/cold/predict", json={"records": [{"user": "u0001"}, {"user": "nobody", "k": 3}]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["basis"] == ["personalized", "popularity"] and [len(p) for p in body["predictions"]] == [10, 3]
        assert not set(body["predictions"][1]) & set(NEW)  # no popularity: new users are not shown feature-only items
        full = c.post("/v1/models/cold/predict", json={"records": [{"user": "u0001", "k": NI}]}).json()
        assert set(NEW) <= set(full["predictions"][0])  # new items are in a known user's full ranking
        r = c.post("/v2/models/cold/infer", json={"inputs": [
            {"name": "user", "datatype": "BYTES", "shape": [2], "data": ["u0001", "nobody"]}]})  # no k: the default
        assert r.status_code == 200, r.text
        outs = {o["name"]: o for o in r.json()["outputs"]}
        assert outs["items"]["shape"] == [2, 10] and outs["basis"]["data"] == ["personalized", "popularity"]
        # the v2 metadata says what infer returns: (N, k) item ids and scores, and the per-row basis
        meta = {o["name"]: o for o in c.get("/v2/models/cold").json()["outputs"]}
        assert {n: (o["datatype"], o["shape"]) for n, o in meta.items() if n != "ood_score"} == {
            n: (outs[n]["datatype"], [-1] * len(outs[n]["shape"])) for n in outs if n != "ood_score"}, (meta, outs)
        bad = c.post("/v1/models/cold/predict", json={"records": [{"user": "u0001", "item": "i0003"}]})
        assert bad.status_code == 422 and "item" in bad.text  # a request names users; an item field is refused


def test_explicit_ratings_rmse_beats_bias_baseline_and_global_mean(tmp_path, capsys):
    frame = make_interactions(n_users=300, n_items=150, per_user=(30, 60), seed=1)
    frame.to_csv(tmp_path / "ratings.csv", index=False)
    rc, out, err = cli(capsys, "train", tmp_path / "ratings.csv", "--target", "rating", "--name", "stars", "--registry",
                       tmp_path / "reg", "--no-progress", "--set=model=mf", "--set=factors=8", "--set=epochs=40")
    assert rc == 0, err
    m = Registry(tmp_path / "reg").load("stars").manifest
    r = m["metrics"]["rating"]
    assert m["task"]["feedback"] == "explicit" and m["model"]["training"]["monitor"] == "val_rmse"
    assert r["mf"] < 0.95 * r["bias_baseline"] and r["bias_baseline"] < r["global_mean"], r


def _hold_out_last(frame: pd.DataFrame, root) -> pd.DataFrame:
    """root/train.csv: all but each user's last interaction; root/held.csv: those last ones plus a user and an item
    the model never saw. Returns the held-out last interactions."""
    last = frame.sort_values("timestamp").groupby("user").tail(1)
    frame.drop(last.index).to_csv(root / "train.csv", index=False)
    extra = pd.DataFrame({"user": ["newcomer", "u0001"], "item": ["i0005", "never-sold"], "rating": [3.0, 3.0],
                          "timestamp": ["2025-01-01", "2025-01-01"]})
    pd.concat([last, extra]).to_csv(root / "held.csv", index=False)
    return last


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """Interactions split by the user before training: the last of each user held out in its own file (plus a
    user and an item the model never saw); ALS and the popularity baseline trained on the rest through the CLI."""
    from fulcrum.cli import main

    root = tmp_path_factory.mktemp("heldout")
    last = _hold_out_last(make_interactions(n_users=300, n_items=200, per_user=(8, 30), seed=2), root)
    for name, model in (("als", "als"), ("pop", "popularity")):
        assert main(["train", str(root / "train.csv"), "--name", name, "--registry", str(root / "reg"),
                     "--no-progress", f"--set=model={model}"]) == 0
    return root, len(last) + 2


def test_evaluate_cli_on_held_out_interactions(heldout, capsys):
    root, n = heldout
    got = {}
    for name in ("als", "pop"):
        rc, out, err = cli(capsys, "evaluate", name, root / "held.csv", "--registry", root / "reg", "--json")
        assert rc == 0, err
        got[name] = json.loads(out)
    assert got["als"]["n"] == n and got["als"]["cold_start_rows"] == 1
    assert got["als"]["ndcg@10"] > 1.3 * got["pop"]["ndcg@10"] and got["als"]["recall@10"] > got["pop"]["recall@10"]
    rc, out, _ = cli(capsys, "evaluate", "als", root / "held.csv", "--registry", root / "reg")
    assert rc == 0 and "ndcg@10" in out and "recall@10" in out


def _graph_factors(package_dir):
    """(users, items, A, B) read straight from the package's model.onnx initializers: the model's own ratings
    A[u] . B[i], independent of the graph's top-k search."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(package_dir / "model.onnx")).graph
    init = {t.name: t for t in g.initializer}
    enc = next(n for n in g.node if n.op_type == "LabelEncoder")
    users = [a for a in enc.attribute if a.name == "keys_strings"][0].strings
    items = [x.decode() for x in init["item_ids"].string_data][:-1]
    return ([u.decode() for u in users], items, numpy_helper.to_array(init["user_factors"]).astype(np.float64),
            numpy_helper.to_array(init["item_factors_t"]).T.astype(np.float64))


def test_evaluate_reports_rmse_on_explicit_ratings(tmp_path, capsys):
    # ratings; each user's last rating held out in its own file, plus a user and an item the model never saw
    frame = make_interactions(n_users=200, n_items=120, per_user=(20, 40), seed=3)
    last = _hold_out_last(frame, tmp_path)
    rc, _, err = cli(capsys, "train", tmp_path / "train.csv", "--target", "rating", "--name", "stars", "--registry",
                     tmp_path / "reg", "--no-progress", "--set=model=mf", "--set=factors=8", "--set=epochs=30")
    assert rc == 0, err
    rc, out, err = cli(capsys, "evaluate", "stars", tmp_path / "held.csv", "--registry", tmp_path / "reg", "--json")
    assert rc == 0, err
    got = json.loads(out)
    assert {"ndcg@10", "recall@10", "map@10", "rmse"} <= set(got), got  # RMSE beside the ranking metrics
    assert got["rated_rows"] == len(last) and got["unrated_rows"] == 2  # the new user and the unknown item
    users, items, A, B = _graph_factors(Registry(tmp_path / "reg").load("stars").path)
    u = np.asarray([users.index(x) for x in last["user"]])
    i = np.asarray([items.index(x) for x in last["item"]])
    want = float(np.sqrt(np.mean((np.sum(A[u] * B[i], axis=1) - last["rating"].to_numpy()) ** 2)))
    assert abs(got["rmse"] - want) < 1e-4, (got["rmse"], want)
    assert got["rmse"] < 0.95 * got["rmse_global_mean"], got  # the training mean on the same rows
    rc, out, _ = cli(capsys, "evaluate", "stars", tmp_path / "held.csv", "--registry", tmp_path / "reg")
    assert rc == 0 and "rmse" in out and "ndcg@10" in out
    # the popularity model ranks by counts and predicts no ratings: its RMSE is the training mean's, on every row
    rc, _, err = cli(capsys, "train", tmp_path / "train.csv", "--target", "rating", "--name", "pop", "--registry",
                     tmp_path / "reg", "--no-progress", "--set=model=popularity")
    assert rc == 0, err
    rc, out, err = cli(capsys, "evaluate", "pop", tmp_path / "held.csv", "--registry", tmp_path / "reg", "--json")
    pop = json.loads(out)
    rest = frame.drop(last.index).sort_values("timestamp")
    mean = rest.drop(rest.groupby("user").tail(2).index)["rating"].mean()  # the training split (the last 2 per user: val, test)
    held = np.concatenate([last["rating"].to_numpy(), [3.0, 3.0]])
    assert pop["rated_rows"] == len(held) and abs(pop["rmse"] - np.sqrt(np.mean((held - mean) ** 2))) < 1e-9
    assert got["rmse"] < pop["rmse"]


def test_builtin_interactions(tmp_path, capsys):
    info = builtin_info("interactions")
    assert info.workload == "recommend" and "known latent structure" in info.description
    rc, _, err = cli(capsys, "train", "builtin:interactions", "--name", "bi", "--registry", tmp_path / "reg",
                     "--no-progress", "--set=model=als")
    assert rc == 0, err
    m = Registry(tmp_path / "reg").load("bi").manifest
    assert m["task"]["workload"] == "recommend" and m["data"]["source"] == "builtin:interactions"
    assert m["task"]["n_users"] == 600 and m["data"]["rows"]["test"] == 600


def _table(n_users=60, n_items=40):
    return make_interactions(n_users=n_users, n_items=n_items, per_user=(6, 12), seed=3)


def _conflicting():
    t = _table()
    return pd.concat([t, t.iloc[[5]].assign(rating=1.0 if t.iloc[5]["rating"] != 1.0 else 2.0)])


def _not_numbers():
    t = _table().astype({"rating": object})
    t.loc[7, "rating"] = "five"
    return t


@pytest.mark.parametrize("table, features, needle", [
    (_conflicting(), None, "different ratings at the same time"),
    (_not_numbers(), None, "'five'"),
    (_table(), pd.DataFrame({"sku_code": ["i0001"], "size": [1.0]}), "no item column"),
    (_table(), pd.DataFrame({"item": ["i0001", "i0001"], "size": [1.0, 2.0]}), "more than once"),
])
def test_bad_interactions_and_features_are_refused(tmp_path, capsys, table, features, needle):
    table.to_csv(tmp_path / "t.csv", index=False)
    args = ["train", tmp_path / "t.csv", "--task", "recommend", "--name", "bad", "--registry", tmp_path / "reg",
            "--no-progress", "--set=model=als"]
    if features is not None:
        features.to_csv(tmp_path / "f.csv", index=False)
        args.append(f"--set=item_features={tmp_path / 'f.csv'}")
    rc, _, err = cli(capsys, *args)
    assert rc != 0 and needle in err, err
    assert not _written(tmp_path / "reg", "bad")


def test_repeated_interactions_are_deduplicated_and_said(tmp_path, capsys):
    t = _table()
    pd.concat([t, t.iloc[:4]]).to_csv(tmp_path / "t.csv", index=False)  # 4 exact repeats
    rc, out, err = cli(capsys, "train", tmp_path / "t.csv", "--name", "dup", "--registry", tmp_path / "reg",
                       "--set=model=als")
    assert rc == 0, err
    assert "dropped 4 duplicate interaction row(s)" in out + err
    assert Registry(tmp_path / "reg").load("dup").manifest["data"]["rows"]["train"] + 2 * 60 == len(t)
