from __future__ import annotations

import dataclasses
import json

import pytest

import fulcrum.costs as costs
from fulcrum.costs import SOURCES, CostModel, CostRecord, money
from fulcrum.errors import ConfigError


def test_public_api_is_what_it_claims():
    assert sorted(costs.__all__) == sorted(set(costs.__all__))
    for name in costs.__all__:
        assert hasattr(costs, name), name


def test_every_default_has_a_dated_source():
    names = [f.name for f in dataclasses.fields(CostModel)]
    assert sorted(SOURCES) == sorted(names)
    for name, text in SOURCES.items():
        assert any(str(year) in text for year in range(2015, 2030)), name
        default = getattr(CostModel(), name)
        assert f"{default:g}" in text or f"{default}" in text, (name, default)


def test_from_dict_rejects_unknown_key_with_suggestion():
    with pytest.raises(ConfigError, match="price_per_kwh"):
        CostModel.from_dict({"price_per_kwhh": 0.2})


@pytest.mark.parametrize("key", ["price_per_kwh", "price_per_cpu_hour", "grams_co2_per_kwh", "gpu_tdp_watts"])
def test_negative_value_names_the_key(key):
    with pytest.raises(ConfigError, match=key):
        CostModel.from_dict({key: -1})


@pytest.mark.parametrize("bad", ["cheap", True, float("nan")])
def test_non_numbers_rejected(bad):
    with pytest.raises(ConfigError, match="price_per_kwh"):
        CostModel(price_per_kwh=bad)


def test_pue_below_one_rejected():
    with pytest.raises(ConfigError, match="pue"):
        CostModel(pue=0.9)


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".json", json.dumps({"price_per_kwh": 0.3, "pue": 1.2})),
        (".toml", "price_per_kwh = 0.3\npue = 1.2\n"),
        (".yaml", "price_per_kwh: 0.3\npue: 1.2\n"),
    ],
)
def test_from_file(tmp_path, suffix, text):
    path = tmp_path / f"costs{suffix}"
    path.write_text(text)
    cm = CostModel.from_file(path)
    assert cm.price_per_kwh == 0.3 and cm.pue == 1.2
    assert cm.price_per_cpu_hour == CostModel().price_per_cpu_hour
    assert CostModel.from_dict(cm.to_dict()) == cm


def test_from_file_negative_value(tmp_path):
    path = tmp_path / "costs.toml"
    path.write_text("price_per_gpu_hour = -4\n")
    with pytest.raises(ConfigError, match="price_per_gpu_hour"):
        CostModel.from_file(path)


def test_money_hand_computed():
    record = CostRecord(
        wall_s=7200, cpu_s=3600, energy_kwh=2.0, energy_method="estimated-tdp", energy_detail="x", gpu_s=1800
    )
    cm = CostModel(price_per_kwh=0.10, price_per_cpu_hour=0.05, price_per_gpu_hour=4.0, grams_co2_per_kwh=500, pue=1.5)
    m = money(record, cm)
    # facility energy 2.0 kWh x 1.5 PUE = 3.0 kWh; energy 3.0 x $0.10 = $0.30
    assert m["facility_kwh"] == pytest.approx(3.0)
    assert m["energy_usd"] == pytest.approx(0.30)
    # CPU 3600 s = 1 h x $0.05 = $0.05; GPU 1800 s = 0.5 h x $4 = $2.00
    assert m["cpu_usd"] == pytest.approx(0.05)
    assert m["gpu_usd"] == pytest.approx(2.0)
    assert m["compute_usd"] == pytest.approx(2.05)
    assert m["total_usd"] == pytest.approx(2.35)
    # CO2 3.0 kWh x 500 g/kWh = 1500 g
    assert m["co2_g"] == pytest.approx(1500.0)


def test_money_without_gpu_uses_default_model():
    record = CostRecord(wall_s=1, cpu_s=3600, energy_kwh=0.0, energy_method="estimated-tdp", energy_detail="x")
    m = money(record)
    assert m["gpu_usd"] == 0.0
    assert m["total_usd"] == pytest.approx(CostModel().price_per_cpu_hour)
