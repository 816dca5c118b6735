"""The recommend task on its built-in generator: MF beats popularity, the graph equals numpy, seen items never come
back, unknown users get the popularity top k, a real server answers and refuses bad requests (422), and bad tables
through the CLI give one clear error with nothing written."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from fulcrum.artifact import Registry
from fulcrum.cli import main
from fulcrum.tasks import detect_task, get_task
from fulcrum.tasks.recommend import make_interactions
from fulcrum.tasks.recommend._models import scores_of, top_k

from test_every_task import Server


@pytest.fixture(scope="module")
def frame():
    return make_interactions(n_users=400, n_items=250, per_user=(8, 30), seed=0)


@pytest.fixture(scope="module")
def trained(frame):
    return get_task("recommend").fit(frame, {"model": "auto", "progress": False, "epochs": 30})


def test_mf_and_als_beat_popularity_and_auto_keeps_the_best_on_validation(trained):
    m = trained.manifest
    c = m["metrics"]["candidates"]
    assert set(c) == {"popularity", "mf", "als"}
    for fam in ("mf", "als"):
        for key in ("ndcg@10", "recall@10"):
            assert c[fam]["test"][key] > 1.3 * c["popularity"]["test"][key], (fam, key, c)
    best = max(c, key=lambda f: c[f]["validation"]["ndcg@10"])
    assert m["model"]["family"] == best and m["metrics"]["test"] == c[best]["test"]
    assert m["metrics"]["primary"]["name"] == "ndcg@10" and m["metrics"]["baseline"]["name"] == "popularity"
    assert m["libraries"]["implicit"] and m["model"]["training"] is not None


def test_graph_equals_numpy_and_excludes_seen_items(trained):
    x = trained.extra
    users, items, seen = x["users"], x["items"], x["seen"]
    sess = ort.InferenceSession(trained.files["model.onnx"])
    u = np.arange(len(users))
    got, _, _ = sess.run(None, {"user": users.astype(object), "k": np.full(len(u), 10, np.int64)})
    ref = items[top_k(scores_of(x["A"], x["B"], u), [seen[i] for i in u], 10)]
    assert (got == ref).mean() > 0.99  # ties may swap
    for r in u:
        assert not set(got[r]) & set(items[seen[r]])  # nothing the user has seen
    # a user who has seen all but 3 items gets 3 items, padded with ""
    few = np.setdiff1d(np.arange(len(items)), [0, 1, 2])
    from fulcrum.tasks.recommend._graph import build_graph, padded_seen

    g = build_graph(["a"], list(items), x["A"][[0, -1]], x["B"], padded_seen([few], len(items)))
    out, _, _ = ort.InferenceSession(g).run(None, {"user": np.array(["a"], object), "k": np.array([5])})
    assert sorted(out[0][:3]) == sorted(items[:3]) and list(out[0][3:]) == ["", ""]


def test_cold_start_gets_popularity(trained, frame):
    sess = ort.InferenceSession(trained.files["model.onnx"])
    got, _, _ = sess.run(None, {"user": np.array(["nobody", "u9999"], object), "k": np.array([10, 10])})
    tr = trained.extra["frame"]
    counts = tr[tr["split"] == "train"]["item"].value_counts()
    assert list(got[0]) == list(got[1])
    assert set(got[0]) <= set(counts.index[:15]) and got[0][0] == counts.index[0]


def test_detects_interactions_not_tables(frame):
    assert detect_task(frame, None).name == "recommend"
    assert detect_task(frame, "item").name == "recommend"
    wide = pd.DataFrame({"user": ["a", "b"] * 10, "x": range(20), "y": range(20), "label": [0, 1] * 10})
    assert detect_task(wide, "label").name != "recommend"


@pytest.fixture(scope="module")
def registry(tmp_path_factory, frame):
    root = tmp_path_factory.mktemp("rec")
    src = root / "interactions.csv"
    frame.to_csv(src, index=False)
    rc = main(["train", str(src), "--name", "rec", "--registry", str(root / "reg"), "--no-progress",
               "--set=epochs=15", "--set=factors=16"])
    assert rc == 0
    return Registry(root / "reg")


def test_server_records_shorthand_k_and_bad_input(registry):
    with Server("rec", registry) as c:
        r = c.post("/v1/models/rec/predict", json={"records": [{"user": "u0001", "k": 3}, {"user": "stranger"}]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [len(p) for p in body["predictions"]] == [3, 10] and len(body["scores"][0]) == 3
        assert body["basis"] == ["personalized", "popularity"]  # the cold-start fallback, stated per row
        assert body["scores"][0] == sorted(body["scores"][0], reverse=True)
        r = c.post("/v1/models/rec/predict", json={"users": ["u0001", "u0002"]})
        assert r.status_code == 200 and all(len(p) == 10 for p in r.json()["predictions"])
        r = c.post("/v2/models/rec/infer", json={"inputs": [
            {"name": "user", "datatype": "BYTES", "shape": [1], "data": ["u0001"]},
            {"name": "k", "datatype": "INT64", "shape": [1], "data": [4]}]})
        assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [1, 4]
        bad = c.post("/v1/models/rec/predict", json={"records": [{"user": "u0001", "k": 100000}]})
        assert bad.status_code == 422 and "from 1 to" in bad.text
        bad = c.post("/v1/models/rec/predict", json={"records": [{"user": 17}]})
        assert bad.status_code == 422


@pytest.mark.parametrize("table, needle", [
    (pd.DataFrame({"a": ["x", "y", "z"] * 4, "b": range(12)}), "no a user column"),
    (pd.DataFrame({"user": ["solo"] * 12, "item": [f"i{i}" for i in range(12)]}), "1 user(s)"),
])
def test_bad_tables_through_the_cli(tmp_path, capsys, table, needle):
    src = tmp_path / "t.csv"
    table.to_csv(src, index=False)
    root = tmp_path / "reg"
    rc = main(["train", str(src), "--task", "recommend", "--name", "bad", "--registry", str(root), "--no-progress"])
    err = capsys.readouterr().err
    assert rc != 0 and needle in err, err
    assert not (root / "bad").exists() and not any(p.name.startswith("bad") for p in root.rglob("*") if p.is_dir())


def test_als_graph_recommends_what_implicit_recommends(frame):
    """The ALS package's graph gives each user the top 10 that the implicit library's own model (refitted here with
    the same data, settings and seed) recommends, with train + validation items filtered."""
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares

    t = get_task("recommend").fit(frame, {"model": "als", "als_alpha": 3.0, "als_regularization": 3.0, "factors": 16,
                                          "progress": False})
    assert t.manifest["model"]["family"] == "als"
    df, users, items = t.extra["frame"], t.extra["users"], t.extra["items"]
    tr, seen = df[df["split"] == "train"], df[df["split"] != "test"]
    shape = (len(users), len(items))
    C = sp.csr_matrix((np.ones(len(tr), np.float32), (tr["u"], tr["i"])), shape=shape)
    ref = AlternatingLeastSquares(factors=16, regularization=3.0, alpha=3.0, iterations=15, random_state=0)
    ref.fit(C, show_progress=False)
    liked = sp.csr_matrix((np.ones(len(seen), np.float32), (seen["u"], seen["i"])), shape=shape)
    want, _ = ref.recommend(np.arange(len(users)), liked, N=10, filter_already_liked_items=True)
    got, _, basis = ort.InferenceSession(t.files["model.onnx"]).run(
        None, {"user": users.astype(object), "k": np.full(len(users), 10, np.int64)})
    same = [list(g) == list(items[w]) for g, w in zip(got, want)]
    assert np.mean(same) > 0.95 and set(basis) == {"personalized"}
