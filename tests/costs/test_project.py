from __future__ import annotations

import json
import math

import pytest

from fulcrum.costs import (
    CostModel,
    CostRecord,
    Ledger,
    break_even_predictions,
    cost_per_million,
    lifetime_cost,
    parse_horizon,
    parse_rate,
    per_prediction_cost,
    project,
    savings,
)
from fulcrum.errors import ConfigError

DAY = 86400


@pytest.mark.parametrize(
    ("text", "per_s"),
    [
        ("50/s", 50.0),
        ("3000/min", 50.0),  # 3000 / 60
        ("100/h", 100 / 3600),
        ("1e6/day", 1e6 / 86400),  # = 11.574...
        ("  12 / hour ", 12 / 3600),
        ("2/days", 2 / 86400),
        (7, 7.0),
    ],
)
def test_parse_rate(text, per_s):
    assert parse_rate(text) == pytest.approx(per_s)


@pytest.mark.parametrize("bad", ["fast", "50", "/s", "50/fortnight", "-5/s", "5/-s", ""])
def test_parse_rate_rejects_malformed_and_lists_forms(bad):
    with pytest.raises(ConfigError, match="3000/min"):
        parse_rate(bad)


@pytest.mark.parametrize("bad", ["0/s", 0, -3.0, float("inf")])
def test_parse_rate_rejects_non_positive(bad):
    with pytest.raises(ConfigError, match="positive"):
        parse_rate(bad)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12mo", 12 * 30.4375 * DAY),  # = 31_557_600 s, one 365.25-day year
        ("30d", 30 * DAY),  # 2_592_000
        ("1y", 365.25 * DAY),  # 31_557_600
        ("6w", 6 * 7 * DAY),  # 3_628_800
        ("24h", 24 * 3600),  # 86_400
        ("1.5y", 1.5 * 365.25 * DAY),
        (3600, 3600.0),
    ],
)
def test_parse_horizon(text, seconds):
    assert parse_horizon(text) == pytest.approx(seconds)


def test_twelve_months_is_one_year():
    assert parse_horizon("12mo") == pytest.approx(parse_horizon("1y")) == pytest.approx(31_557_600)


@pytest.mark.parametrize("bad", ["12 months", "soon", "d30", "", "-1d"])
def test_parse_horizon_rejects_malformed_and_lists_forms(bad):
    with pytest.raises(ConfigError, match="12mo"):
        parse_horizon(bad)


@pytest.mark.parametrize("bad", ["0d", 0, -5])
def test_parse_horizon_rejects_non_positive(bad):
    with pytest.raises(ConfigError, match="positive"):
        parse_horizon(bad)


def test_cost_per_million():
    # 2.5e-8 USD per prediction * 1e6 = 0.025 USD
    assert cost_per_million(2.5e-8) == pytest.approx(0.025)
    with pytest.raises(ConfigError):
        cost_per_million(-1.0)


def test_break_even_predictions():
    # training $10 / $1e-5 per prediction = 1,000,000 predictions
    assert break_even_predictions(10.0, 1e-5) == pytest.approx(1e6)
    assert break_even_predictions(10.0, 0.0) is None  # free predictions never catch up
    with pytest.raises(ConfigError, match="training_cost"):
        break_even_predictions(-1.0, 1e-5)


def test_lifetime_cost():
    # 10 + 1e-5 USD * 50/s * 86400 s = 10 + 43.2 = 53.2
    assert lifetime_cost(10.0, 1e-5, 50.0, 86400.0) == pytest.approx(53.2)
    assert lifetime_cost(10.0, 1e-5, "3000/min", "24h") == pytest.approx(53.2)


def test_savings():
    # (2e-5 - 1e-5) * 50 * 86400 - 5 = 1e-5 * 4.32e6 - 5 = 43.2 - 5 = 38.2
    assert savings(2e-5, 1e-5, 5.0, 50.0, 86400.0) == pytest.approx(38.2)
    # a candidate that costs more per prediction loses money: (1e-5 - 2e-5) * 4.32e6 - 0 = -43.2
    assert savings(1e-5, 2e-5, 0.0, 50.0, 86400.0) == pytest.approx(-43.2)


def _rec(cpu_s: float, energy_kwh: float, wall_s: float | None = None, **kw) -> CostRecord:
    return CostRecord(
        wall_s=cpu_s if wall_s is None else wall_s,
        cpu_s=cpu_s,
        energy_kwh=energy_kwh,
        energy_method="estimated-tdp",
        energy_detail="test",
        **kw,
    )


def test_per_prediction_cost():
    cm = CostModel(price_per_kwh=0.2, price_per_cpu_hour=0.1, grams_co2_per_kwh=400)
    pp = per_prediction_cost(_rec(cpu_s=3.6, energy_kwh=1e-3, wall_s=2.0, flops=5000), 1000, cm)
    # energy 1e-3 kWh * $0.2 = $2e-4; cpu 3.6 s / 3600 * $0.1 = $1e-4; total $3e-4 / 1000 = $3e-7
    assert pp["usd"] == pytest.approx(3e-7)
    assert pp["latency_s"] == pytest.approx(2e-3)  # 2.0 s / 1000
    assert pp["cpu_s"] == pytest.approx(3.6e-3)
    assert pp["energy_kwh"] == pytest.approx(1e-6)
    assert pp["co2_g"] == pytest.approx(4e-4)  # 1e-3 kWh * 400 g / 1000
    assert pp["flops"] == pytest.approx(5.0)
    assert pp["energy_method"] == "estimated-tdp"
    with pytest.raises(ConfigError, match="n_predictions"):
        per_prediction_cost(_rec(1.0, 0.0), 0, cm)


# Hand-computed project() case. Cost model: energy free, $3.60 per CPU-hour = $0.001 per
# CPU-second, 1000 gCO2/kWh.
#   training: 2000 cpu_s -> $2.00
#   baseline "fp32": 1.0 cpu_s and 1e-3 kWh per 1000 predictions -> $1e-6 and 1e-6 kWh per prediction
#   "int8": 0.25 cpu_s per 1000 predictions -> $2.5e-7 per prediction, built for $1.00
#   rate 10/s, horizon 1e6 s -> 1e7 predictions
CM = CostModel(price_per_kwh=0.0, price_per_cpu_hour=3.6, grams_co2_per_kwh=1000)


def _report():
    variants = {
        "fp32": per_prediction_cost(_rec(1.0, 1e-3), 1000, CM),
        "int8": per_prediction_cost(_rec(0.25, 2.5e-4), 1000, CM),
    }
    return project(_rec(2000.0, 0.5), variants, CM, 10.0, 1e6, optimization={"int8": 1.0})


def test_project_hand_computed():
    r = _report()
    assert r["training"]["usd"] == pytest.approx(2.0)
    assert r["training"]["co2_g"] == pytest.approx(500.0)  # 0.5 kWh * 1000 g/kWh
    assert r["training"]["energy_method"] == "estimated-tdp"
    assert r["assumptions"]["predictions_over_horizon"] == pytest.approx(1e7)
    fp32, int8 = r["variants"]["fp32"], r["variants"]["int8"]
    assert fp32["usd_per_million"] == pytest.approx(1.0)  # 1e-6 * 1e6
    assert int8["usd_per_million"] == pytest.approx(0.25)
    assert fp32["kwh_per_million"] == pytest.approx(1.0)  # 1e-6 kWh * 1e6
    assert fp32["co2_g_per_million"] == pytest.approx(1000.0)  # 1 kWh * 1000 g
    # break-even: $2 / $1e-6 = 2e6 predictions, at 10/s = 2e5 s; int8: $2 / $2.5e-7 = 8e6, 8e5 s
    assert fp32["break_even_predictions"] == pytest.approx(2e6)
    assert fp32["break_even_s"] == pytest.approx(2e5)
    assert int8["break_even_predictions"] == pytest.approx(8e6)
    assert int8["break_even_s"] == pytest.approx(8e5)
    assert int8["break_even_within_horizon"] is True
    # lifetime: fp32 2 + 1e-6 * 1e7 = 12; int8 2 + 1 + 2.5e-7 * 1e7 = 5.5
    assert fp32["lifetime_usd"] == pytest.approx(12.0)
    assert int8["lifetime_usd"] == pytest.approx(5.5)
    assert r["baseline"] == "fp32" and r["best"] == "int8"
    # saving: (1e-6 - 2.5e-7) * 1e7 - 1 = 7.5 - 1 = 6.5 = 12 - 5.5
    assert r["best_saving_usd"] == pytest.approx(6.5)


def test_project_is_json_and_accepts_text_rate_and_horizon():
    r = _report()
    json.dumps(r, allow_nan=False)
    variants = {n: v["per_prediction"] for n, v in r["variants"].items()}
    again = project(_rec(2000.0, 0.5), variants, CM, "600/min", "1e6s", optimization={"int8": 1.0})
    assert again["best_saving_usd"] == pytest.approx(6.5)


def test_project_free_variant_and_errors():
    free = per_prediction_cost(_rec(0.0, 0.0), 10, CM)
    r = project(_rec(2000.0, 0.5), {"free": free}, CM, 1.0, 10.0)
    assert r["variants"]["free"]["break_even_predictions"] is None
    assert r["variants"]["free"]["break_even_s"] is None
    assert r["best_saving_usd"] == 0.0
    with pytest.raises(ConfigError, match="baseline"):
        project(_rec(1.0, 0.0), {"free": free}, CM, 1.0, 10.0, baseline="fp16")
    with pytest.raises(ConfigError, match="at least one variant"):
        project(_rec(1.0, 0.0), {}, CM, 1.0, 10.0)
    with pytest.raises(ConfigError, match="unknown variant"):
        project(_rec(1.0, 0.0), {"free": free}, CM, 1.0, 10.0, optimization={"int8": 1.0})


def test_ledger_round_trip_matches_project():
    ledger = Ledger(CM).add_training(_rec(2000.0, 0.5))
    ledger.add_variant("fp32", _rec(1.0, 1e-3), 1000)
    ledger.add_variant("int8", _rec(0.25, 2.5e-4), 1000, optimization=_rec(1000.0, 0.0))  # 1000 cpu_s = $1
    report = ledger.report(10.0, 1e6)
    assert report["best_saving_usd"] == pytest.approx(6.5)
    restored = Ledger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert restored.report(10.0, 1e6) == report
    with pytest.raises(ConfigError, match="add_training"):
        Ledger().report(1.0, 1.0)


def test_break_even_consistent_with_lifetime():
    # at the break-even count, inference cost equals training cost
    n = break_even_predictions(3.0, 2e-6)
    assert n is not None and math.isclose(lifetime_cost(3.0, 2e-6, n, 1.0), 6.0)


def _pp(usd: float, lo: float | None = None, hi: float | None = None) -> dict:
    pp = per_prediction_cost(_rec(usd * 1000 * 3600 / CM.price_per_cpu_hour, 0.0), 1000, CM)
    if lo is not None:
        pp["usd_ci"] = (lo, hi)
    return pp


def test_project_within_noise_prefers_the_simpler_variant():
    # int8-static is cheaper by point value, but the per-prediction intervals overlap: the parent is kept
    variants = {"base": _pp(1.0e-6, 0.8e-6, 1.3e-6), "int8-static": _pp(0.9e-6, 0.7e-6, 1.2e-6),
                "pruned-50": _pp(0.95e-6, 0.8e-6, 1.1e-6)}
    r = project(_rec(2000.0, 0.5), variants, CM, 10.0, 1e6, baseline="base")
    assert r["cheapest_by_point"] == "int8-static" and r["best"] == "base"
    assert r["within_noise"] == ["base", "int8-static", "pruned-50"]
    assert r["variants"]["int8-static"]["lifetime_usd_ci"][0] < r["variants"]["int8-static"]["lifetime_usd"]
    assert r["best_saving_usd"] == 0.0
    # beyond noise, the cheaper one wins
    variants["int8-static"] = _pp(0.3e-6, 0.25e-6, 0.35e-6)
    assert project(_rec(2000.0, 0.5), variants, CM, 10.0, 1e6, baseline="base")["best"] == "int8-static"


def test_project_recommends_only_candidates():
    variants = {"base": _pp(1.0e-6), "pruned-80": _pp(0.2e-6)}
    r = project(_rec(2000.0, 0.5), variants, CM, 10.0, 1e6, baseline="base", candidates=["base"])
    assert r["best"] == "base" and r["candidates"] == ["base"]
    assert r["variants"]["pruned-80"]["lifetime_usd"] < r["variants"]["base"]["lifetime_usd"]  # cheaper, not eligible
    with pytest.raises(ConfigError, match="no candidate"):
        project(_rec(2000.0, 0.5), variants, CM, 10.0, 1e6, candidates=["ghost"])
