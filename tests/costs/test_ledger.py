"""The cost ledger on real packages: measurement is real, arithmetic is right, bad input is refused."""

from __future__ import annotations

import json

import pytest

import fulcrum
from fulcrum.cli import main
from fulcrum.costs import CostModel, flops_per_prediction
from fulcrum.costs._ledger import package_ledger


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    reg = fulcrum.Registry(tmp_path_factory.mktemp("reg"))
    opts = dict(model="mlp", early_stopping=False, refit=False, registry=reg, progress=False)
    fulcrum.train("builtin:wine", name="warmup", epochs=1, **opts)  # first-use imports are not the model's cost
    short = fulcrum.train("builtin:wine", name="short", epochs=2, **opts)
    long = fulcrum.train("builtin:wine", name="long", epochs=200, **opts)
    big = fulcrum.train("builtin:wine", name="big", model="mlp", epochs=2, hidden_sizes=(256, 256),
                        registry=reg, progress=False)
    return reg, short, long, big


def test_longer_run_records_more_time_energy_and_flops(trained):
    _, short, long, _ = trained
    s, lg = short.manifest["costs"]["training"], long.manifest["costs"]["training"]
    assert lg["cpu_s"] > s["cpu_s"] and lg["wall_s"] > s["wall_s"]
    assert lg["energy_kwh"] > s["energy_kwh"]
    assert lg["flops"] == pytest.approx(100 * s["flops"], rel=1e-9)  # 200 epochs vs 2, same model and data
    assert s["energy_method"] in ("rapl", "estimated-tdp") and s["energy_detail"]


def test_bigger_model_more_flops_per_prediction(trained):
    _, short, _, big = trained
    small_f, method = flops_per_prediction(short.manifest)
    big_f, _ = flops_per_prediction(big.manifest)
    assert method.startswith("counted")
    # (13->128->64->3) vs (13->256->256->3): forward multiply-adds x 2
    assert small_f == 2 * (13 * 128 + 128 * 64 + 64 * 3)
    assert big_f == 2 * (13 * 256 + 256 * 256 + 256 * 3)
    base = short.manifest["costs"]["inference"]["base"]
    assert base["batch_1"]["flops"] == small_f and base["batch_256"]["n_predictions"] >= 256


def test_report_arithmetic_matches_the_records(trained):
    reg, short, _, _ = trained
    cm = CostModel(price_per_kwh=0.2, price_per_cpu_hour=0.05, grams_co2_per_kwh=400)
    rep = package_ledger(short, cm, rate_per_s=50, horizon_s=30 * 86400)
    t = short.manifest["costs"]["training"]
    train_usd = t["energy_kwh"] * 0.2 + t["cpu_s"] / 3600 * 0.05
    assert rep["training"]["usd"] == pytest.approx(train_usd)
    w = short.manifest["costs"]["inference"]["base"]["batch_1"]
    win = w["window"]
    per_pred = (win["energy_kwh"] * 0.2 + win["cpu_s"] / 3600 * 0.05) / w["n_predictions"]
    v = rep["variants"]["base"]
    assert v["per_prediction"]["usd"] == pytest.approx(per_pred)
    assert v["usd_per_million"] == pytest.approx(per_pred * 1e6)
    assert v["break_even_predictions"] == pytest.approx(train_usd / per_pred)
    assert v["break_even_s"] == pytest.approx(train_usd / per_pred / 50)
    assert v["lifetime_usd"] == pytest.approx(train_usd + per_pred * 50 * 30 * 86400)


def test_cli_costs_text_json_and_plot(trained, tmp_path, capsys):
    reg, short, _, _ = trained
    png = tmp_path / "cost.png"
    rc = main(["costs", "short", "--rate", "50/s", "--horizon", "12mo", "--plot", str(png), "--registry", str(reg.root)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "training:" in out and "break-even" in out and "base" in out and "estimated" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc = main(["costs", "short", "--rate", "3000/min", "--json", "--registry", str(reg.root)])
    rep = json.loads(capsys.readouterr().out)
    assert rc == 0 and rep["assumptions"]["rate_per_s"] == pytest.approx(50.0)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--rate", "fast"], "rate"),
        (["--horizon=-3d"], "horizon"),
        (["--variant", "ghost"], "ghost"),
        (["--batch", "7"], "batch 7"),
    ],
)
def test_cli_costs_bad_input(trained, extra, message, capsys):
    reg, *_ = trained
    rc = main(["costs", "short", "--registry", str(reg.root), *extra])
    err = capsys.readouterr().err
    assert rc == 1 and message in err.lower()


def test_negative_price_in_cost_model_file(trained, tmp_path, capsys):
    reg, *_ = trained
    f = tmp_path / "cm.json"
    f.write_text(json.dumps({"price_per_kwh": -1}))
    rc = main(["costs", "short", "--cost-model", str(f), "--registry", str(reg.root)])
    assert rc == 1 and "price_per_kwh" in capsys.readouterr().err


def test_package_without_cost_record(tmp_path, capsys):
    est = fulcrum.FulcrumClassifier(model="linear").fit([[0], [1], [2], [3], [4], [5], [6], [7]], [0, 0, 0, 0, 1, 1, 1, 1])
    reg = fulcrum.Registry(tmp_path / "reg")
    est.save("nocost", registry=reg)
    rc = main(["costs", "nocost", "--registry", str(reg.root)])
    assert rc == 1 and "no cost record" in capsys.readouterr().err


def test_variants_enter_the_ledger_with_their_build_cost(trained, capsys):
    from fulcrum.optimize import BenchSettings, OptimizeOptions, optimize_package

    reg, short, _, _ = trained
    fast = OptimizeOptions(sparsities=(0.5,), fine_tune_epochs=2, distill_epochs=3,
                           bench=BenchSettings(warmup=2, runs_b1=20, runs_b256=4, rounds=2))
    optimize_package("short", registry=reg, variants=["int8-dynamic", "distilled"], options=fast)
    pkg = reg.load("short")
    rep = package_ledger(pkg, CostModel(), rate_per_s=10, horizon_s=86400)
    assert {"base", "int8-dynamic", "distilled"} <= set(rep["variants"])
    distilled = rep["variants"]["distilled"]
    assert distilled["optimization_usd"] > 0  # distillation is training spent to save inference
    # the student is smaller: fewer FLOPs per prediction than the teacher
    assert distilled["per_prediction"]["flops"] < rep["variants"]["base"]["per_prediction"]["flops"]
    for at in (1, 256):
        r = package_ledger(pkg, CostModel(), rate_per_s=10, horizon_s=86400, batch=at)
        assert r["variants"]["int8-dynamic"]["per_prediction"]["usd"] > 0
    rc = main(["costs", "short", "--variant", "base", "--variant", "distilled", "--registry", str(reg.root)])
    out = capsys.readouterr().out
    assert rc == 0 and "distilled" in out and "int8-dynamic" not in out
