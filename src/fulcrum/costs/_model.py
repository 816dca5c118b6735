"""The cost model: prices, carbon intensity and power figures that turn a
:class:`~fulcrum.costs.CostRecord` into money and CO2.

Every default is a published figure; :data:`SOURCES` names where each one comes
from (and the year), so a report can print its assumptions next to its totals.
Override any of them per deployment::

    CostModel(price_per_kwh=0.25, grams_co2_per_kwh=350)
    CostModel.from_file("costs.toml")
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import TYPE_CHECKING, Any

from ..config import config_from_dict, load_config_file
from ..errors import ConfigError

if TYPE_CHECKING:
    from ._meter import CostRecord

__all__ = ["CostModel", "SOURCES", "money"]

#: Where each default in :class:`CostModel` comes from (name -> citation with year).
SOURCES: dict[str, str] = {
    "price_per_kwh": (
        "0.1274 USD/kWh: U.S. Energy Information Administration (EIA), Electric Power Monthly, "
        "Table 5.3, average retail price of electricity to the commercial sector, 2023 annual average "
        "(12.74 cents/kWh)."
    ),
    "price_per_cpu_hour": (
        "0.0504 USD per vCPU-hour: AWS EC2 on-demand m7i.large (2 vCPU, 8 GiB), Linux, us-east-1, "
        "0.1008 USD/hour in 2024, divided by its 2 vCPUs."
    ),
    "price_per_gpu_hour": (
        "4.10 USD per GPU-hour: AWS EC2 on-demand p4d.24xlarge (8x NVIDIA A100 40 GB), Linux, us-east-1, "
        "32.77 USD/hour list price in 2024, divided by its 8 GPUs."
    ),
    "grams_co2_per_kwh": (
        "480 gCO2/kWh: Ember, Global Electricity Review 2024, world average carbon intensity of "
        "electricity generation in 2023."
    ),
    "cpu_tdp_watts_per_core": (
        "6.75 W per core: Intel Xeon Platinum 8380 (Ice Lake-SP, 2021) datasheet, 270 W TDP / 40 cores. "
        "Used only when energy cannot be measured; multiplied by CPU-seconds summed over cores."
    ),
    "gpu_tdp_watts": (
        "400 W: NVIDIA A100 SXM4 datasheet (2020), maximum thermal design power. "
        "Used only when GPU energy cannot be measured; multiplied by GPU-seconds."
    ),
    "pue": (
        "1.0: energy as drawn by the machine, no facility overhead. The Uptime Institute Global Data "
        "Center Survey 2023 reports an industry-average PUE of 1.58; set pue=1.58 to include cooling "
        "and power distribution."
    ),
}


@dataclasses.dataclass
class CostModel:
    """Prices and physical constants used to price a cost record.

    Energy is priced at the facility: ``energy_kwh * pue * price_per_kwh``, and CO2 is
    ``energy_kwh * pue * grams_co2_per_kwh``. Compute is priced by busy time:
    ``cpu_s / 3600 * price_per_cpu_hour + gpu_s / 3600 * price_per_gpu_hour``.
    A cloud instance price already includes its electricity; set ``price_per_kwh=0``
    to avoid counting it twice, or ``price_per_cpu_hour=0`` on owned hardware.
    """

    price_per_kwh: float = 0.1274  # USD, see SOURCES
    price_per_cpu_hour: float = 0.0504  # USD per vCPU-hour
    price_per_gpu_hour: float = 4.10  # USD per GPU-hour
    grams_co2_per_kwh: float = 480.0
    cpu_tdp_watts_per_core: float = 6.75
    gpu_tdp_watts: float = 400.0
    pue: float = 1.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(
                    f"CostModel.{f.name} must be a number, got {value!r}; "
                    f"the default is {f.default!r} ({SOURCES[f.name]})"
                )
            if not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"CostModel.{f.name} must be a finite number >= 0, got {value!r}; "
                    f"use 0 to leave it out or the default {f.default!r}."
                )
            setattr(self, f.name, float(value))
        if self.pue < 1.0:
            raise ConfigError(
                f"CostModel.pue must be >= 1.0 (facility energy / IT energy), got {self.pue!r}; use 1.0 for none."
            )

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CostModel:
        """Build from a mapping; unknown keys and negative values raise :class:`ConfigError`."""
        return config_from_dict(cls, data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CostModel:
        """Read a ``.json``, ``.toml``, ``.yaml`` or ``.yml`` file of cost-model keys."""
        return config_from_dict(cls, load_config_file(path))


def money(record: CostRecord, cost_model: CostModel | None = None) -> dict[str, float]:
    """Price a record. All figures in USD except ``facility_kwh`` and ``co2_g``.

    ::

        facility_kwh = energy_kwh * pue
        energy_usd   = facility_kwh * price_per_kwh
        cpu_usd      = cpu_s / 3600 * price_per_cpu_hour
        gpu_usd      = (gpu_s or 0) / 3600 * price_per_gpu_hour
        compute_usd  = cpu_usd + gpu_usd
        total_usd    = energy_usd + compute_usd
        co2_g        = facility_kwh * grams_co2_per_kwh
    """
    cm = cost_model or CostModel()
    facility_kwh = record.energy_kwh * cm.pue
    energy_usd = facility_kwh * cm.price_per_kwh
    cpu_usd = record.cpu_s / 3600.0 * cm.price_per_cpu_hour
    gpu_usd = (record.gpu_s or 0.0) / 3600.0 * cm.price_per_gpu_hour
    compute_usd = cpu_usd + gpu_usd
    return {
        "facility_kwh": facility_kwh,
        "energy_usd": energy_usd,
        "cpu_usd": cpu_usd,
        "gpu_usd": gpu_usd,
        "compute_usd": compute_usd,
        "total_usd": energy_usd + compute_usd,
        "co2_g": facility_kwh * cm.grams_co2_per_kwh,
    }
