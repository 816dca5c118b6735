"""Energy sources for a meter window: RAPL counters, codecarbon, or a TDP estimate.

Each source has ``start()`` and ``stop(cpu_s, gpu_s) -> Energy``; the returned
:class:`Energy` says which method produced the number and how, so a record never
presents an estimate as a measurement.

- ``rapl``: reads ``/sys/class/powercap/intel-rapl:N/energy_uj`` (top-level package
  zones; sub-zones are inside their package and ``psys`` overlaps them, so both are
  skipped). It measures the whole socket, every process on it. Counters wrap at
  ``max_energy_range_uj``; one wrap per window is corrected. Linux makes these files
  root-only on many systems since 2020, so "readable" is checked, not assumed.
- ``codecarbon``: codecarbon's ``OfflineEmissionsTracker`` (no network, no files).
  On machines without power counters it *estimates* from CPU load x TDP and a RAM
  constant; the detail says so. Starting it costs about 1.5 s (it probes the
  hardware), so it is never the automatic choice.
- ``estimated-tdp``: ``cpu_s * cpu_tdp_watts_per_core / 3.6e6`` kWh (plus
  ``gpu_s * gpu_tdp_watts / 3.6e6`` when a GPU was used), from :class:`CostModel`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import warnings
from pathlib import Path
from typing import Literal, Protocol

from ..errors import ConfigError, FulcrumError
from ._model import CostModel

__all__ = ["Energy", "EnergyMethod", "EnergyChoice", "rapl_available", "make_energy_source"]

EnergyMethod = Literal["rapl", "codecarbon", "estimated-tdp"]
EnergyChoice = Literal["auto", "rapl", "estimate", "codecarbon"]
ENERGY_CHOICES: tuple[str, ...] = ("auto", "rapl", "estimate", "codecarbon")

#: Root of the Linux power-capping sysfs tree; a module attribute so tests can point it elsewhere.
POWERCAP_ROOT = Path("/sys/class/powercap")

J_PER_KWH = 3.6e6
_ZONE = re.compile(r"^intel-rapl:\d+$")
# codecarbon CPU modes that read real power counters (anything else is a TDP-based estimate)
_CODECARBON_MEASURED = {"intel_rapl", "intel_power_gadget", "apple_powermetrics", "windows_emi"}


@dataclasses.dataclass(frozen=True)
class Energy:
    kwh: float
    method: EnergyMethod
    detail: str


class EnergySource(Protocol):
    def start(self) -> None: ...

    def stop(self, cpu_s: float, gpu_s: float | None) -> Energy: ...


# --------------------------------------------------------------------------- estimate


class TdpEstimate:
    """Energy from CPU (and GPU) time times thermal design power."""

    def __init__(self, cost_model: CostModel, reason: str = "") -> None:
        self.cost_model = cost_model
        self.reason = reason

    def start(self) -> None:
        pass

    def stop(self, cpu_s: float, gpu_s: float | None) -> Energy:
        w = self.cost_model.cpu_tdp_watts_per_core
        joules = cpu_s * w
        detail = f"estimated: {cpu_s:.4g} cpu_s (summed over cores) x {w:g} W/core TDP = {joules:.4g} J"
        if gpu_s:
            gw = self.cost_model.gpu_tdp_watts
            joules += gpu_s * gw
            detail += f" + {gpu_s:.4g} gpu_s x {gw:g} W GPU TDP"
        if self.reason:
            detail += f" ({self.reason})"
        return Energy(joules / J_PER_KWH, "estimated-tdp", detail)


def _gpu_estimate(gpu_s: float | None, cost_model: CostModel) -> tuple[float, str]:
    if not gpu_s:
        return 0.0, ""
    j = gpu_s * cost_model.gpu_tdp_watts
    return j, f"; plus GPU estimated: {gpu_s:.4g} gpu_s x {cost_model.gpu_tdp_watts:g} W TDP = {j:.4g} J"


# --------------------------------------------------------------------------- RAPL


@dataclasses.dataclass(frozen=True)
class _Zone:
    path: Path
    name: str
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def _rapl_zones() -> list[_Zone]:
    """Readable top-level RAPL package zones (empty when there are none or they are root-only)."""
    zones: list[_Zone] = []
    try:
        candidates = sorted(p for p in POWERCAP_ROOT.iterdir() if _ZONE.match(p.name))
    except OSError:
        return []
    for p in candidates:
        try:
            name = (p / "name").read_text().strip() if (p / "name").exists() else p.name
            if name == "psys":
                continue
            max_range = int((p / "max_energy_range_uj").read_text().strip())
            zone = _Zone(p, name, max_range)
            zone.read_uj()
        except (OSError, ValueError):
            continue
        zones.append(zone)
    return zones


def rapl_available() -> bool:
    """True when at least one RAPL package energy counter can be read by this process."""
    return bool(_rapl_zones())


class Rapl:
    def __init__(self, cost_model: CostModel, zones: list[_Zone] | None = None) -> None:
        self.cost_model = cost_model
        self.zones = zones if zones is not None else _rapl_zones()
        if not self.zones:
            raise ConfigError(
                f"energy='rapl' but no readable RAPL counter under {POWERCAP_ROOT}/intel-rapl:*/energy_uj "
                "(absent on this machine, or root-only); use energy='auto' or energy='estimate', "
                "or grant read access to energy_uj."
            )
        self._start: list[int] = []

    def start(self) -> None:
        self._start = [z.read_uj() for z in self.zones]

    def stop(self, cpu_s: float, gpu_s: float | None) -> Energy:
        total_uj = 0
        wraps = 0
        for zone, before in zip(self.zones, self._start):
            delta = zone.read_uj() - before
            if delta < 0:  # the counter wrapped past max_energy_range_uj
                delta += zone.max_range_uj
                wraps += 1
            total_uj += delta
        joules = total_uj / 1e6
        names = ", ".join(z.name for z in self.zones)
        detail = f"measured: RAPL {names} ({len(self.zones)} zone(s), whole socket, all processes) = {joules:.4g} J"
        if wraps:
            detail += f"; {wraps} counter wrap(s) corrected"
        gj, gdetail = _gpu_estimate(gpu_s, self.cost_model)
        return Energy((joules + gj) / J_PER_KWH, "rapl", detail + gdetail)


# --------------------------------------------------------------------------- codecarbon


class Codecarbon:
    def __init__(self, cost_model: CostModel, country_iso_code: str = "USA") -> None:
        try:
            import codecarbon  # noqa: F401
        except ImportError as exc:  # pragma: no cover - codecarbon is a dependency
            raise ConfigError(
                "energy='codecarbon' needs the codecarbon package; install it or use energy='auto'."
            ) from exc
        self.cost_model = cost_model
        self.country_iso_code = country_iso_code
        self._tracker = None

    def start(self) -> None:
        import codecarbon
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self._version = codecarbon.__version__
        # codecarbon wraps __init__/start/stop in a blanket ``suppress(Exception)``: a warning
        # escalated to an error (pytest -W error) would silently disable it, so its own
        # warnings are ignored here. output_methods=[] writes nothing (save_to_file=False is
        # deprecated since codecarbon 3.x and itself warns).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._tracker = OfflineEmissionsTracker(
                country_iso_code=self.country_iso_code,
                output_methods=[],
                log_level="error",
                tracking_mode="process",
                measure_power_secs=1,
            )
            self._tracker.start()

    def stop(self, cpu_s: float, gpu_s: float | None) -> Energy:
        tracker = self._tracker
        assert tracker is not None, "start() before stop()"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tracker.stop()
        data = getattr(tracker, "final_emissions_data", None)
        if data is None:
            raise FulcrumError(
                "codecarbon did not produce a measurement (it suppresses its own errors; rerun with "
                "logging.getLogger('codecarbon') at DEBUG to see why); use energy='auto' or 'estimate'."
            )
        kwh = float(data.energy_consumed)
        modes = {type(h).__name__: getattr(h, "_mode", None) for h in getattr(tracker, "_hardware", [])}
        cpu_mode = modes.get("CPU")
        measured = cpu_mode in _CODECARBON_MEASURED
        kind = "measured" if measured else "estimated"
        how = "power counters" if measured else "TDP x CPU load, no power counters readable"
        detail = (
            f"{kind}: codecarbon {self._version} offline ({self.country_iso_code}), CPU mode {cpu_mode!r} ({how}); "
            f"cpu {float(data.cpu_energy):.4g} + ram {float(data.ram_energy):.4g} "
            f"+ gpu {float(data.gpu_energy):.4g} kWh"
        )
        return Energy(kwh, "codecarbon", detail)


def make_energy_source(choice: str, cost_model: CostModel, country_iso_code: str = "USA") -> EnergySource:
    """The energy source for ``choice``: ``auto`` is RAPL when readable, else the TDP estimate."""
    if choice not in ENERGY_CHOICES:
        raise ConfigError(f"Invalid energy={choice!r}; choose one of {', '.join(map(repr, ENERGY_CHOICES))}.")
    if choice == "estimate":
        return TdpEstimate(cost_model, "chosen: energy='estimate'")
    if choice == "rapl":
        return Rapl(cost_model)
    if choice == "codecarbon":
        return Codecarbon(cost_model, country_iso_code)
    zones = _rapl_zones()
    if zones:
        return Rapl(cost_model, zones)
    return TdpEstimate(cost_model, f"no readable RAPL counter under {POWERCAP_ROOT}")
