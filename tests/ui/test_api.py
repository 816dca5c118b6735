"""The dashboard's JSON endpoints on a real server, against the figures the commands print."""

from __future__ import annotations

import math
import re

import httpx
import pytest

from fulcrum.ui._live import histogram_quantile

from .conftest import XSS_COLUMN, XSS_LABEL


def get(srv, path, **params):
    return httpx.get(srv.url + "/ui/api/" + path, params=params, timeout=60)


def test_models_list_has_every_version_with_the_figures_fulcrum_models_prints(ui_server, ui_registry, capsys):
    from fulcrum.cli import main

    body = get(ui_server, "models").json()
    assert main(["models", "--json", "--registry", str(ui_registry.root)]) == 0
    import json

    cli = {f"{r['name']}@{r['version']}": r for r in json.loads(capsys.readouterr().out)}
    rows = {r["ref"]: r for r in body["models"]}
    assert set(rows) == set(cli) == {"penguins@1", "penguins@2", "penguins@3", "xss@1"}
    assert body["total"] == body["matched"] == 4
    for ref, r in rows.items():
        c = cli[ref]
        for key in ("aliases", "task", "metric_name", "metric_value", "size_bytes", "training_usd", "usd_per_million"):
            assert r[key] == c[key], (ref, key)
        assert r["training_usd"] is not None and r["usd_per_million"] is not None
    assert rows["penguins@1"]["aliases"] == ["production"]
    assert rows["penguins@3"]["aliases"] == ["candidate"]
    assert rows["penguins@3"]["parent"] == "penguins@1" and rows["penguins@3"]["variant"] == "int8-dynamic"


def test_models_search_and_sort(ui_server):
    found = get(ui_server, "models", q="PRODUCTION").json()
    assert [r["ref"] for r in found["models"]] == ["penguins@1"] and found["matched"] == 1 and found["total"] == 4
    assert [r["ref"] for r in get(ui_server, "models", q="xss").json()["models"]] == ["xss@1"]
    up = [r["size_bytes"] for r in get(ui_server, "models", sort="size_bytes").json()["models"]]
    down = [r["size_bytes"] for r in get(ui_server, "models", sort="size_bytes", order="desc").json()["models"]]
    assert up == sorted(up) and down == sorted(down, reverse=True) and up != down
    by_version = [r["version"] for r in get(ui_server, "models", sort="version", order="desc").json()["models"]]
    assert by_version == sorted(by_version, reverse=True)
    assert [r["ref"] for r in get(ui_server, "models", limit=2).json()["models"]] == ["penguins@1", "penguins@2"]
    page2 = get(ui_server, "models", limit=2, offset=2).json()
    assert [r["ref"] for r in page2["models"]] == ["penguins@3", "xss@1"] and page2["matched"] == 4


@pytest.mark.parametrize("params, words", [
    ({"sort": "colour"}, ["colour", "training_usd"]),
    ({"order": "up"}, ["up", "asc or desc"]),
    ({"limit": 0}, ["limit"]),
    ({"offset": -1}, ["offset"]),
])
def test_models_bad_query_is_400_naming_it(ui_server, params, words):
    r = get(ui_server, "models", **params)
    assert r.status_code == 400
    for w in words:
        assert w in r.json()["error"]


def test_models_list_sees_a_new_version(ui_server, ui_registry):
    """The list is cached per index state: a version registered after a read is listed at once."""
    before = get(ui_server, "models").json()["total"]
    pkg = ui_registry.load("xss@1")
    files = {f: pkg.read_bytes(f) for f in pkg.files}
    manifest = {k: v for k, v in pkg.manifest.items() if k not in ("files", "name", "version", "created")}
    new = ui_registry.register("xss", manifest, files)
    after = get(ui_server, "models").json()
    assert after["total"] == before + 1
    assert new.ref in [r["ref"] for r in after["models"]]
    ui_registry.set_alias(new.ref, "fresh")
    assert next(r for r in get(ui_server, "models").json()["models"] if r["ref"] == new.ref)["aliases"] == ["fresh"]
    ui_registry.remove_alias("xss", "fresh")


def test_version_detail(ui_server, ui_registry):
    d = get(ui_server, "models/penguins@1").json()
    m = ui_registry.load("penguins@1").manifest
    assert d["ref"] == "penguins@1" and d["aliases"] == ["production"]
    history = ui_registry.load("penguins@1").read_json("history.json")
    assert d["history"] == history and len(history) >= 2 and {"train_loss", "val_loss"} <= set(history[0])
    assert d["leaderboard"] and d["leaderboard"][0]["family"] == "mlp"
    assert d["confusion_matrix"]["matrix"] == m["metrics"]["test"]["confusion_matrix"]
    assert d["confusion_matrix"]["labels"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert {c["column"] for c in d["profile"]} >= {"island", "bill_length_mm", "body_mass_g"}
    sections = {s["section"] for s in d["manifest"]}
    assert {"metrics", "config", "lineage", "task"} <= sections and "files" not in sections
    assert d["lineage"]["parent"] is None and d["lineage"]["data_source"] == "builtin:penguins"
    assert d["lineage"]["children"] == [{"ref": "penguins@3", "variant": "int8-dynamic", "aliases": ["candidate"]}]
    v3 = get(ui_server, "models/penguins@candidate").json()
    assert v3["ref"] == "penguins@3" and v3["lineage"]["parent"] == "penguins@1"
    assert v3["lineage"]["variant"] == "int8-dynamic"
    assert get(ui_server, "models/penguins@9").status_code == 404
    assert get(ui_server, "models/..%2Fetc").status_code in (400, 404)


def test_variants_pareto_and_aliases(ui_server, ui_registry):
    from fulcrum.costs import measurements

    d = get(ui_server, "models/penguins@1/variants").json()
    stored = measurements(ui_registry.load("penguins@1"), batch=1)
    ids = [v["id"] for v in d["variants"]]
    assert ids == list(stored)
    assert {"base", "onnx-fp32", "int8-dynamic"} <= set(ids)
    assert any(v["pareto"] for v in d["variants"])
    for v in d["variants"]:
        # the page shows what the optimizer measured and stored, figure for figure (how those figures relate to each
        # other is tests/optimize/test_bench.py's; their size is benchmarks/')
        rec = stored[v["id"]].to_dict()
        assert v["latency_ms"] == rec["latency_ms"] and v["latency_ci_ms"] == rec["latency_ci_ms"], v["id"]
        assert v["size_bytes"] == rec["size_bytes"] > 0 and v["metric"]["name"] == "accuracy"
    aliases = {a["alias"]: a for a in d["aliases"]}
    assert aliases["production"]["variant"] == "base" and aliases["production"]["version"] == 1
    assert aliases["candidate"]["variant"] == "int8-dynamic" and aliases["candidate"]["ref"] == "penguins@3"


def test_pareto_marks_only_undominated_rows():
    from fulcrum.ui._data import _mark_pareto

    rows = [{"metric": {"value": 0.9}, "latency_ms": {"p50": 1.0}, "size_bytes": 10},
            {"metric": {"value": 0.8}, "latency_ms": {"p50": 2.0}, "size_bytes": 20},  # dominated by the first
            {"metric": {"value": 0.7}, "latency_ms": {"p50": 0.5}, "size_bytes": 30}]
    _mark_pareto(rows, greater=True)
    assert [r["pareto"] for r in rows] == [True, False, True]


def test_costs_are_the_ledger_of_fulcrum_costs(ui_server, ui_registry):
    from fulcrum.costs import CostModel, parse_horizon, parse_rate
    from fulcrum.costs._ledger import package_ledger

    d = get(ui_server, "models/penguins@1/costs", rate="50/s", horizon="30d").json()
    ledger = package_ledger(ui_registry.load("penguins@1"), CostModel(), rate_per_s=parse_rate("50/s"),
                            horizon_s=parse_horizon("30d"))
    r = d["report"]
    assert r["assumptions"]["rate_per_s"] == 50.0 and r["assumptions"]["rate_source"] == "given"
    assert set(r["variants"]) == set(ledger["variants"])
    for vid, v in ledger["variants"].items():
        assert r["variants"][vid]["lifetime_usd"] == pytest.approx(v["lifetime_usd"])
        assert r["variants"][vid]["break_even_s"] == pytest.approx(v["break_even_s"])
        curve = d["curves"][vid]
        assert curve["t_s"][-1] == pytest.approx(parse_horizon("30d"))
        assert curve["usd"][-1] == pytest.approx(v["lifetime_usd"], rel=1e-6)  # the curve ends at the lifetime cost
        assert curve["usd"] == sorted(curve["usd"])
    e = d["energy"]
    assert e["training"]["kwh"] == ledger["training"]["energy_kwh"]
    n = 50.0 * parse_horizon("30d")
    assert e["inference"]["kwh"] == pytest.approx(ledger["variants"]["base"]["kwh_per_million"] * n / 1e6)
    slower = get(ui_server, "models/penguins@1/costs", rate="5/s", horizon="30d").json()
    assert slower["report"]["variants"]["base"]["lifetime_usd"] < r["variants"]["base"]["lifetime_usd"]
    bad = get(ui_server, "models/penguins@1/costs", rate="fast")
    assert bad.status_code == 400 and "rate" in bad.json()["error"]
    assert get(ui_server, "models/penguins@1/costs", horizon="forever").status_code == 400


def test_compare_two_versions(ui_server):
    d = get(ui_server, "compare", a="penguins@1", b="penguins@2").json()
    assert d["a"] == "penguins@1" and d["b"] == "penguins@2"
    fields = {r["field"]: r for r in d["rows"]}
    assert fields["family"]["a"] == "mlp" and fields["family"]["b"] != "mlp"
    assert "test accuracy" in fields
    assert any(r["field"] == "model" for r in d["config_diff"])
    assert d["comparison"]["comparable"] is True and d["comparison"]["old_ref"] == "penguins@1"
    assert len(d["history"]["a"]) >= 2 and d["history"]["b"] == []  # the linear model has no epochs
    other = get(ui_server, "compare", a="penguins@1", b="xss@1").json()
    assert other["comparison"]["comparable"] is False and other["comparison"]["reason"]
    assert get(ui_server, "compare", a="penguins@1").status_code == 422


def test_html_in_names_comes_back_as_plain_json_strings(ui_server):
    d = get(ui_server, "models/xss@1").json()
    assert XSS_COLUMN in [c["column"] for c in d["profile"]]
    assert XSS_LABEL in d["confusion_matrix"]["labels"]
    r = get(ui_server, "models/xss@1")
    assert r.headers["content-type"].startswith("application/json") and r.headers["x-content-type-options"] == "nosniff"


def test_read_only_every_other_method_is_405(ui_server):
    paths = ["/ui/api/models", "/ui/api/models/penguins@1", "/ui/api/models/penguins@1/variants",
             "/ui/api/models/penguins@1/costs", "/ui/api/live", "/ui/api/compare", "/ui/", "/ui/version",
             "/ui/variants", "/ui/costs", "/ui/live", "/ui/compare", "/ui/static/ui.js"]
    for path in paths:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            r = httpx.request(method, ui_server.url + path, json={"alias": "x"})
            assert r.status_code == 405, (method, path, r.status_code)


def test_pages_and_static_files_are_served_from_the_package(ui_server):
    from fulcrum.ui import PAGES

    for name in PAGES:
        r = httpx.get(ui_server.url + ("/ui/" if name == "models" else f"/ui/{name}"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        scripts = re.findall(r'<script src="([^"]+)"', r.text)
        assert scripts == (["static/ui.js"] if name == "models" else ["static/chart.umd.min.js", "static/ui.js"])
        assert "http" not in r.text.replace("http-equiv", "")  # nothing from elsewhere: no CDN
        assert "script-src 'self'" in r.headers["content-security-policy"]
    js = httpx.get(ui_server.url + "/ui/static/chart.umd.min.js")
    assert js.status_code == 200 and "Chart.js v4" in js.text[:200]
    assert httpx.get(ui_server.url + "/ui/static/chart.js.LICENSE.md").text.startswith("The MIT License")
    assert "innerHTML" not in httpx.get(ui_server.url + "/ui/static/ui.js").text  # text only, never markup


def test_live_without_a_server_reads_the_serving_records(ui_server):
    d = get(ui_server, "live", ref="penguins@production").json()
    assert d["ref"] == "penguins@1" and d["source"] == "records" and d["requests"] is None
    assert "fulcrum serve" in d["note"]
    assert get(ui_server, "live", ref="nope").status_code == 404


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = [(0.1, 10.0), (0.2, 20.0), (math.inf, 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.99, [(0.1, 0.0), (math.inf, 5.0)]) == 0.1  # beyond the last bound: its edge
    # a latency histogram's p50 / p95 / p99 (what the live page shows), cumulative counts per upper bound in seconds
    lat = [(0.005, 40.0), (0.01, 70.0), (0.025, 90.0), (0.05, 98.0), (0.1, 100.0), (math.inf, 100.0)]
    qs = [histogram_quantile(q, lat) for q in (0.5, 0.95, 0.99)]
    assert qs == pytest.approx([0.005 + 0.005 * 10 / 30, 0.025 + 0.025 * 5 / 8, 0.05 + 0.05 * 1 / 2])


def test_every_page_and_static_file_is_package_data():
    """pyproject's package-data globs cover every file the dashboard serves (else a wheel lacks it)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    import fulcrum.ui

    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["fulcrum"]
    pkg = Path(fulcrum.ui.__file__).parent
    served = [p.relative_to(pkg.parent).as_posix() for d in ("pages", "static") for p in (pkg / d).iterdir()]
    assert len(served) >= 5  # the pages' one shell, ui.js, ui.css, Chart.js and its licence
    for path in served:
        assert any(fnmatch.fnmatch(path, g) for g in globs), f"{path} is not package data in pyproject.toml"
