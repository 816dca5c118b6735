"""A text model behind the real server (uvicorn on 127.0.0.1): the friendly route with ``{"texts": [...]}`` and
with records, the v2 BYTES tensor, the text limits, the graph's OOD score, and text drift in the server's monitor,
its metrics and ``fulcrum monitor``.

Limits, as the README says: a text longer than the model's ``max_chars`` is **422** (the request is well-formed and
within the server's size limits, but a value breaks the model's input schema); 413 stays for a body over
``max_body_bytes`` or more rows than ``max_rows``. Empty or whitespace-only texts and non-strings are 422.
"""

from __future__ import annotations

import json
import shutil
import time

import pandas as pd
import pytest

import fulcrum
from fulcrum.artifact import Registry
from fulcrum.cli import main
from fulcrum.data import load_builtin
from fulcrum.serve import ServeSettings, create_app
from fulcrum.serve._monitor import DRIFT_ALPHA

from .conftest import LiveServer

ECONOMY = "Shares fell sharply on Wall Street after the central bank raised interest rates again."
FOOTBALL = "The striker scored twice in the cup final as the champions beat their rivals 3-1."


@pytest.fixture(scope="module")
def news(tmp_path_factory):
    """A registry with news@1: the n-gram model on 200 BBC articles whose text column is named 'article';
    and 150 other BBC articles (in domain, never trained on)."""
    bbc = load_builtin("bbc_news")
    train = pd.concat([g.sample(40, random_state=0) for _, g in bbc.groupby("label")])
    rest = bbc.drop(train.index)
    held_out = rest[rest["text"].str.len() <= 10_000].sample(150, random_state=1)  # 7 of 2,225 articles are longer
    root = tmp_path_factory.mktemp("text-serve") / "registry"
    frame = train.rename(columns={"text": "article", "label": "topic"}).reset_index(drop=True)
    fulcrum.train(frame, target="topic", name="news", model="ngram", progress=False, registry=Registry(root))
    return root, held_out["text"].tolist()


@pytest.fixture
def server(news, tmp_path):
    """``server(**settings)``: a started LiveServer on a fresh copy of the registry; stopped after the test."""
    root = tmp_path / "registry"
    shutil.copytree(news[0], root)
    started: list[LiveServer] = []

    def start(**settings) -> LiveServer:
        settings = {"poll_interval_s": 0.2, "usage_flush_s": 0.2, "access_log": False, **settings}
        srv = LiveServer(create_app(["news"], ServeSettings(**settings), registry=Registry(root))).start()
        started.append(srv)
        return srv

    start.root = root  # type: ignore[attr-defined]
    yield start
    for srv in started:
        srv.stop()


def v2(texts, datatype="BYTES", shape=None, name="text"):
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape or [len(texts)], "data": texts}]}


def test_friendly_route_takes_texts_or_records_and_v2_takes_bytes(server):
    srv = server()
    with srv.client() as c:
        r = c.post("/v1/models/news/predict", json={"texts": [ECONOMY, FOOTBALL]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["predictions"] == ["business", "sport"]
        assert set(body["probabilities"][0]) == {"business", "entertainment", "politics", "sport", "tech"}
        # the graph's OOD score (share of unseen words) comes back with its verdict
        assert len(body["ood_scores"]) == 2 and all(0.0 <= s <= 1.0 for s in body["ood_scores"])
        assert body["ood"] == [False, False]

        # records: the input's name ('text') or the training table's text column ('article')
        for key in ("text", "article"):
            r = c.post("/v1/models/news/predict", json={"records": [{key: ECONOMY}, {key: FOOTBALL}]})
            assert r.status_code == 200, (key, r.text)
            assert r.json()["predictions"] == body["predictions"]
            assert r.json()["probabilities"] == body["probabilities"]

        # v2: a BYTES tensor, shape [N] or [N, 1]
        for req in (v2([ECONOMY, FOOTBALL]), v2([[ECONOMY], [FOOTBALL]], shape=[2, 1])):
            r = c.post("/v2/models/news/infer", json=req)
            assert r.status_code == 200, r.text
            out = {o["name"]: o for o in r.json()["outputs"]}
            assert out["label"]["datatype"] == "BYTES" and out["label"]["data"] == ["business", "sport"]
            assert out["probabilities"]["shape"] == [2, 5]
            assert out["ood_score"]["shape"] == [2] and out["ood_score"]["data"] == pytest.approx(body["ood_scores"])

        # the limit and the OOD threshold are advertised where clients look
        meta = c.get("/v2/models/news").json()
        (inp,) = meta["inputs"]
        assert inp["name"] == "text" and inp["datatype"] == "BYTES" and inp["parameters"]["max_chars"] == 10_000
        assert "threshold" in next(o for o in meta["outputs"] if o["name"] == "ood_score")["parameters"]
        schema = c.get("/openapi.json").json()["components"]["schemas"]
        text_schema = next(v for k, v in schema.items() if k.endswith("_Record"))["properties"]["text"]
        assert text_schema["maxLength"] == 10_000 and text_schema["minLength"] == 1


@pytest.mark.parametrize("value, status, words", [
    ("x" * 10_001, 422, ["10001 characters", "limit of 10000", "shorten it"]),
    ("", 422, ["empty or only whitespace", "send some text"]),
    ("  \n\t ", 422, ["empty or only whitespace"]),
    (42, 422, ["valid string"]),
    (None, 422, ["valid string"]),
    ("nul\x00inside", 422, ["NUL"]),
])
def test_bad_texts_are_refused_on_every_route(server, value, status, words):
    srv = server()
    with srv.client() as c:
        for path, req in [("/v1/models/news/predict", {"texts": [ECONOMY, value]}),
                          ("/v1/models/news/predict", {"records": [{"text": ECONOMY}, {"article": value}]}),
                          ("/v2/models/news/infer", v2([ECONOMY, value]))]:
            r = c.post(path, json=req)
            assert r.status_code == status, (path, r.text)
            text = r.text
            assert all(w in text for w in words), (path, text)
        # a text at the limit is fine
        r = c.post("/v1/models/news/predict", json={"texts": ["word " * 2000]})
        assert r.status_code == 200, r.text


def test_request_shape_errors(server):
    srv = server(max_rows=4)
    with srv.client() as c:
        r = c.post("/v1/models/news/predict", json={"texts": [ECONOMY], "records": [{"text": ECONOMY}]})
        assert r.status_code == 422 and "exactly one of them" in r.text
        r = c.post("/v1/models/news/predict", json={"texts": ECONOMY})
        assert r.status_code == 422
        r = c.post("/v1/models/news/predict", json={"texts": [ECONOMY] * 5})
        assert r.status_code == 413 and "at most 4" in r.text  # too many rows: 413
        r = c.post("/v2/models/news/infer", json=v2([1.5], datatype="FP32"))
        assert r.status_code == 422


def test_text_drift_and_ood_rate_in_the_monitor_metrics_and_cli(server, news, capsys):
    held_out = news[1]
    tweets = load_builtin("tweets").sample(150, random_state=0)["text"].tolist()
    srv = server()
    with srv.client() as c:
        for i in range(0, len(held_out), 15):  # in-domain traffic: no drift, few OOD rows
            assert c.post("/v1/models/news/predict", json={"texts": held_out[i:i + 15]}).status_code == 200
        snap = c.get("/v1/models/news/monitor").json()
        text = snap["drift"]["text"]
        assert snap["status"] == "ok" and text["kind"] == "text" and text["drifted"] is False
        assert set(text) >= {"length", "oov"} and snap["ood"]["source"] == "graph"
        assert snap["ood"]["rate"] < 0.1
    srv.stop()

    srv = server()  # a restarted server sees tweets: short texts, other words
    with srv.client() as c:
        for i in range(0, len(tweets), 15):
            r = c.post("/v1/models/news/predict", json={"texts": tweets[i:i + 15]})
            assert r.status_code == 200, r.text
        snap = c.get("/v1/models/news/monitor").json()
        text = snap["drift"]["text"]
        assert text["drifted"] is True and text["length"]["drifted"] and text["oov"]["drifted"]
        assert text["length"]["mean"]["window"] < 0.2 * text["length"]["mean"]["train"]
        assert text["oov"]["mean"]["window"] > text["oov"]["mean"]["train"]
        assert snap["drifted_columns"] == ["text"] and snap["ood"]["rate"] > 0.3
        metrics = c.get("/metrics").text
        ood_line = next(x for x in metrics.splitlines() if x.startswith('fulcrum_ood_rows_total{model="news"'))
        assert float(ood_line.split()[-1]) > 0.3 * len(tweets)
        gauges: dict[str, float] = {}
        deadline = time.monotonic() + 10
        while len(gauges) < 2 and time.monotonic() < deadline:  # the gauges follow the monitor at each poll (0.2 s)
            time.sleep(0.1)
            gauges = {x.split("{")[0]: float(x.split()[-1]) for x in c.get("/metrics").text.splitlines()
                      if x.startswith(('fulcrum_drift_score{column="text",model="news"', 'fulcrum_ood_rate{model="news"'))}
        assert gauges.get("fulcrum_drift_score", 0) >= 0.2 and gauges.get("fulcrum_ood_rate", 0) > 0.3, gauges
    srv.stop()

    # `fulcrum monitor` reads what the server saved
    root = str(server.root)
    assert main(["monitor", "news", "--json", "--registry", root]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["origin"] == "server" and report["snapshot"]["drifted_columns"] == ["text"]
    assert report["recommendation"]["retrain"] is True
    assert main(["monitor", "news", "--registry", root]) == 0
    out = capsys.readouterr().out
    assert "out-of-distribution: " in out and "RETRAIN" in out
    assert "text length" in out and "out-of-vocabulary" in out  # which side of the text drifted


def test_text_drift_p_values_weigh_the_training_reference(news):
    """The profile counts the texts behind each reference distribution (lengths: the training texts; OOV shares:
    the validation texts), and the monitor weighs its p-values by them; a profile without those counts falls back
    on the column's. Treating the reference as exact made 150 in-domain articles look drifted."""
    import copy

    from fulcrum.serve import Monitor

    pkg = Registry(news[0]).load("news")
    profile = pkg.read_json("profile.json")
    col = profile["columns"]["text"]
    assert col["count"] == col["length"]["count"] == 120 and col["oov"]["count"] == 40
    older = copy.deepcopy(profile)
    del older["columns"]["text"]["length"]["count"], older["columns"]["text"]["oov"]["count"]
    for prof in (profile, older):
        mon = Monitor(prof, pkg.manifest["inputs"], graph_scores=True, ood_threshold=0.5)
        mon.observe({"text": news[1]})
        drift = mon.drift()["text"]
        assert drift["status"] == "ok" and not drift["oov"]["drifted"], drift
        assert drift["length"]["psi_pvalue"] > 0.01 and drift["oov"]["psi_pvalue"] > DRIFT_ALPHA
