from __future__ import annotations

import struct

from fulcrum.costs import CostModel, CostRecord, per_prediction_cost, plot_cumulative_cost, project

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _rec(cpu_s: float) -> CostRecord:
    energy = cpu_s * 6.75 / 3.6e6
    return CostRecord(cpu_s, cpu_s, energy, "estimated-tdp", "t")


def _report(rate: str = "2/s") -> dict:
    cm = CostModel()
    variants = {
        "onnx-fp32": per_prediction_cost(_rec(3.0), 1000, cm),
        "int8-dynamic": per_prediction_cost(_rec(1.0), 1000, cm),
        "free": per_prediction_cost(_rec(0.0), 1000, cm),  # break-even never: must not break the plot
    }
    return project(_rec(40 * 3600), variants, cm, rate, "12mo", optimization={"int8-dynamic": 0.6, "free": 3.0})


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_sane_png(tmp_path):
    out = plot_cumulative_cost(_report(), tmp_path / "sub" / "costs.png")
    assert out == tmp_path / "sub" / "costs.png" and out.is_file()
    assert 10_000 < out.stat().st_size < 2_000_000
    width, height = _png_size(out)
    assert 600 <= width <= 2000 and 400 <= height <= 1500


def test_plot_with_early_break_even_points(tmp_path):
    report = _report("5000/s")
    out = plot_cumulative_cost(report, str(tmp_path / "busy.png"))
    assert _png_size(out)[0] > 0
