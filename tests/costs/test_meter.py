from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from fulcrum.costs import CostModel, CostRecord, Meter, measure, rapl_available
from fulcrum.costs import _energy
from fulcrum.errors import ConfigError, DataError


def _busy(n: int) -> int:
    s = 0
    for i in range(n):
        s += i * i
    return s


def test_record_fields_and_energy_from_cpu_time():
    # what a window records (timing relations such as "longer work takes longer" belong to benchmarks)
    with measure(sample_memory=False) as m:
        _busy(100_000)
    r = m.record
    assert r is not None
    assert r.wall_s >= 0 and r.cpu_s >= 0 and r.energy_kwh >= 0 and r.gpu_s is None and r.peak_rss_mb is None
    if r.energy_method == "estimated-tdp":  # the estimate is exactly CPU seconds x TDP per core
        tdp = CostModel().cpu_tdp_watts_per_core
        assert r.energy_kwh == pytest.approx(r.cpu_s * tdp / 3.6e6)


def test_energy_method_is_labelled():
    with measure() as m:
        _busy(50_000)
    r = m.record
    assert r is not None
    expected = "rapl" if rapl_available() else "estimated-tdp"
    assert r.energy_method == expected
    assert r.energy_detail.startswith("measured: RAPL" if expected == "rapl" else "estimated:")


def test_estimate_is_cpu_seconds_times_tdp():
    cm = CostModel(cpu_tdp_watts_per_core=10.0)
    with measure("estimate", cost_model=cm) as m:
        _busy(200_000)
    r = m.record
    assert r is not None and r.energy_method == "estimated-tdp"
    # kWh = cpu_s * 10 W / 3.6e6 J/kWh
    assert r.energy_kwh == pytest.approx(r.cpu_s * 10.0 / 3.6e6)
    assert "10 W/core TDP" in r.energy_detail


def test_child_process_cpu_time_is_counted():
    # the child reports its own CPU time; the window (in which the parent only waits) must include it
    code = "import time\ns=0\nfor i in range(300_000): s+=i\nprint(time.process_time())"
    with measure(sample_memory=False) as m:
        child = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    child_cpu = float(child.stdout.strip())
    assert m.record is not None and m.record.cpu_s >= child_cpu


def test_peak_rss_counts_memory_held_in_the_window():
    with measure(sample_memory=False) as base:
        pass
    assert base.record is not None and base.record.peak_rss_mb is None
    import psutil

    before = psutil.Process().memory_info().rss / 2**20
    with measure() as m:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, written so it is resident; alive when the window ends
    assert m.record is not None and m.record.peak_rss_mb is not None
    assert m.record.peak_rss_mb >= before + 60
    del block


def test_gpu_time_is_none_without_cuda():
    with measure() as m:
        pass
    assert m.record is not None and m.record.gpu_s is None


def test_flops_set_in_window_reach_the_record():
    with measure() as m:
        m.flops = 1234
    assert m.record is not None and m.record.flops == 1234


def test_meter_start_stop_and_misuse():
    meter = Meter("estimate", sample_memory=False)
    with pytest.raises(RuntimeError, match="before start"):
        meter.stop()
    meter.start()
    with pytest.raises(RuntimeError, match="already running"):
        meter.start()
    record = meter.stop()
    assert record is meter.record and record.wall_s >= 0


def test_unknown_energy_choice():
    with pytest.raises(ConfigError, match="'auto'"):
        Meter("nvml")


def test_record_round_trip_and_validation():
    with measure() as m:
        _busy(1000)
    assert m.record is not None
    d = json.loads(json.dumps(m.record.to_dict()))
    assert CostRecord.from_dict(d) == m.record
    with pytest.raises(DataError, match="colour"):
        CostRecord.from_dict({**d, "colour": 1})
    with pytest.raises(DataError, match="energy_method"):
        CostRecord.from_dict({**d, "energy_method": "guessed"})
    del d["wall_s"]
    with pytest.raises(DataError, match="wall_s"):
        CostRecord.from_dict(d)


# ----------------------------------------------------------------------------- RAPL


def _zone(root, name, label, uj, max_uj=1_000_000_000):
    z = root / name
    z.mkdir()
    (z / "name").write_text(label + "\n")
    (z / "energy_uj").write_text(f"{uj}\n")
    (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return z


@pytest.fixture
def fake_powercap(tmp_path, monkeypatch):
    root = tmp_path / "powercap"
    root.mkdir()
    monkeypatch.setattr(_energy, "POWERCAP_ROOT", root)
    return root


def test_rapl_refused_when_unreadable(fake_powercap):
    with pytest.raises(ConfigError, match="energy='estimate'"):
        Meter("rapl")
    with measure() as m:  # auto falls back, and says why
        pass
    assert m.record is not None and m.record.energy_method == "estimated-tdp"
    assert "no readable RAPL" in m.record.energy_detail


def test_rapl_reads_package_zones_only(fake_powercap):
    pkg = _zone(fake_powercap, "intel-rapl:0", "package-0", 5_000_000)
    sub = _zone(fake_powercap, "intel-rapl:0:0", "core", 1_000)
    psys = _zone(fake_powercap, "intel-rapl:1", "psys", 1_000)
    with measure() as m:  # auto picks RAPL when readable
        (pkg / "energy_uj").write_text("8600000\n")
        (sub / "energy_uj").write_text("9999999\n")
        (psys / "energy_uj").write_text("9999999\n")
    r = m.record
    assert r is not None and r.energy_method == "rapl"
    # package only: 8.6e6 - 5.0e6 = 3.6e6 uJ = 3.6 J = 3.6 / 3.6e6 kWh = 1e-6 kWh
    assert r.energy_kwh == pytest.approx(1e-6)
    assert "package-0" in r.energy_detail and "measured" in r.energy_detail


def test_rapl_counter_wraparound(fake_powercap):
    pkg = _zone(fake_powercap, "intel-rapl:0", "package-0", 999_000_000, max_uj=1_000_000_000)
    with measure("rapl") as m:
        (pkg / "energy_uj").write_text("500000\n")
    r = m.record
    assert r is not None
    # 500_000 - 999_000_000 + 1_000_000_000 = 1_500_000 uJ = 1.5 J
    assert r.energy_kwh == pytest.approx(1.5 / 3.6e6)
    assert "wrap" in r.energy_detail


# ----------------------------------------------------------------------------- codecarbon


def test_codecarbon_offline_is_labelled_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with measure("codecarbon", sample_memory=False) as m:
        _busy(300_000)
    r = m.record
    assert r is not None and r.energy_method == "codecarbon"
    assert r.energy_kwh > 0
    assert "codecarbon" in r.energy_detail
    if not rapl_available():  # no power counters: codecarbon estimates, and the record says so
        assert r.energy_detail.startswith("estimated:")
    assert list(tmp_path.iterdir()) == []
