"""The cost ledger on real packages: measurement is real, arithmetic is right, bad input is refused."""

from __future__ import annotations

import json

import pytest

import fulcrum
from fulcrum.cli import main
from fulcrum.costs import CostModel, flops_per_prediction
from fulcrum.costs._ledger import package_ledger
from fulcrum.optimize import BenchSettings, OptimizeOptions, optimize_package


FAST_BENCH = BenchSettings(warmup=2, rounds=3, round_s=0.0, min_calls_b1=10, min_calls_big=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    reg = fulcrum.Registry(tmp_path_factory.mktemp("reg"))
    opts = dict(model="mlp", early_stopping=False, refit=False, registry=reg, progress=False)
    short = fulcrum.train("builtin:wine", name="short", epochs=2, **opts)
    long = fulcrum.train("builtin:wine", name="long", epochs=20, **opts)
    big = fulcrum.train("builtin:wine", name="big", model="mlp", epochs=2, hidden_sizes=(256, 256),
                        registry=reg, progress=False)
    return reg, short, long, big


def test_training_record_structure_and_exact_flops(trained):
    # timing relations (a longer run takes longer) belong to benchmarks; here: what is recorded, and FLOPs,
    # which are counted, not timed
    _, short, long, _ = trained
    s, lg = short.manifest["costs"]["training"], long.manifest["costs"]["training"]
    for rec in (s, lg):
        assert {"wall_s", "cpu_s", "gpu_s", "peak_rss_mb", "flops", "energy_kwh", "energy_method", "energy_detail",
                "usd", "co2_g"} <= set(rec)
        assert rec["wall_s"] >= 0 and rec["cpu_s"] >= 0 and rec["energy_kwh"] >= 0
        assert rec["energy_method"] in ("rapl", "estimated-tdp") and rec["energy_detail"]
        if rec["energy_method"] == "estimated-tdp":  # the estimate is CPU seconds x TDP, and says so
            assert rec["energy_detail"].startswith("estimated:")
    assert lg["flops"] == pytest.approx(10 * s["flops"], rel=1e-9)  # 20 epochs vs 2, same model and data


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
    reg, short, _, _ = trained
    fast = OptimizeOptions(sparsities=(0.5,), fine_tune_epochs=2, distill_epochs=3, bench=FAST_BENCH)
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


# ----------------------------------------------------------------------------- one source per figure; quality first


@pytest.fixture(scope="module")
def optimized(trained):
    """A package with its variants measured, one of them (pruned-95, barely fine-tuned) much worse than the parent."""
    reg, *_ = trained
    pkg = fulcrum.train("builtin:wine", name="agree", model="mlp", epochs=10, hidden_sizes=(64, 32),
                        early_stopping=False, refit=False, registry=reg, progress=False)
    opts = OptimizeOptions(sparsities=(0.95,), fine_tune_epochs=1, bench=FAST_BENCH)
    report = optimize_package(pkg.ref, registry=reg, variants=["int8-dynamic", "pruned"], options=opts)
    assert report.variants["pruned-95"]["metric_drop"] > 0.05  # the premise: a cheap variant nobody should use
    return reg, pkg.ref


def _row(out: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first`` (cells are separated by 2+ spaces)."""
    import re

    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0].lstrip("*") == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{out}")


def test_models_costs_optimize_print_the_same_figures(optimized, capsys):
    from fulcrum.costs import measurement
    from fulcrum.optimize._plot import pareto_figure

    reg, ref = optimized
    root = str(reg.root)
    assert main(["models", "agree", "--registry", root]) == 0
    models = _row(capsys.readouterr().out, "agree")
    assert main(["costs", ref, "--registry", root]) == 0
    costs_out = capsys.readouterr().out
    costs = _row(costs_out, "base")
    # nothing new to build: the stored measurements, printed again
    assert main(["optimize", ref, "--variants", "int8-dynamic,pruned-95", "--registry", root]) == 0
    opt_out = capsys.readouterr().out
    opt = _row(opt_out, "base")

    record = measurement(reg.load(ref), "base", batch=1)
    usd = [c for c in models if c.startswith("$")][1]  # train cost, then $/1M
    assert usd == [c for c in costs if c.startswith("$")][0] == [c for c in opt if c.startswith("$")][0]
    assert usd == f"${record.usd_per_million:.4g}"
    p50 = f"{record.latency_ms['p50']:.3f}"
    assert costs[3] == p50 and opt[3].split()[0] == p50  # the same median, one call at batch 1
    # the size in the optimize table is the size in the Pareto plot's label
    size = opt[7]
    fig = pareto_figure({"base": record}, metric_name="accuracy")
    assert [t.get_text() for t in fig.axes[0].texts] == [f"base ({size})"]
    # and the JSON figures are the same numbers
    assert main(["models", "agree", "--json", "--registry", root]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert main(["costs", ref, "--json", "--registry", root]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert row["usd_per_million"] == rep["variants"]["base"]["usd_per_million"] == record.usd_per_million
    assert rep["measurements"]["base"]["source"] == "optimize" and rep["measurements"]["base"]["measured_at"]
    assert "measured:   optimize run" in costs_out and "measured: optimize run" in opt_out


def test_costs_recommendation_honours_the_quality_constraint(optimized, capsys):
    reg, ref = optimized
    root = str(reg.root)
    assert main(["costs", ref, "--registry", root]) == 0
    out = capsys.readouterr().out
    rec = next(line for line in out.splitlines() if line.startswith("recommended: "))
    assert "pruned-95" not in rec and "within metric_drop<=0.01" in rec
    assert "excluded pruned-95: accuracy" in out and "over the allowed drop of 0.01" in out
    assert main(["costs", ref, "--json", "--registry", root]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["best"] != "pruned-95" and "pruned-95" in rep["recommendation"]["excluded"]
    assert rep["variants"]["pruned-95"]["excluded"] and rep["variants"]["base"]["excluded"] is None
    # a looser constraint lets it compete again
    assert main(["costs", ref, "--max-drop", "90%", "--json", "--registry", root]) == 0
    loose = json.loads(capsys.readouterr().out)
    assert loose["recommendation"]["excluded"] == {} and loose["recommendation"]["max_drop"] == pytest.approx(0.9)


@pytest.mark.parametrize("bad", ["-0.1", "2", "lots", "nan"])
def test_costs_max_drop_must_be_a_fraction(optimized, bad, capsys):
    reg, ref = optimized
    rc = main(["costs", ref, f"--max-drop={bad}", "--registry", str(reg.root)])
    captured = capsys.readouterr()
    assert rc == 1 and "--max-drop" in captured.err and "[0, 1]" in captured.err and captured.out == ""


def test_costs_without_variants_says_so(trained, capsys):
    reg, _, long, _ = trained
    assert main(["costs", "long", "--registry", str(reg.root)]) == 0
    out = capsys.readouterr().out
    assert f"no optimized variants measured for {long.ref}; run `fulcrum optimize {long.ref}`" in out
    assert "recommended:" not in out and "measured after training" in out
