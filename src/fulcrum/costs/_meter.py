"""Meters: time, CPU/GPU time, peak memory and energy of a block of code.

::

    with measure() as m:
        model.fit(X, y)
    m.record.wall_s, m.record.energy_kwh, m.record.energy_method

What each field means, and how it is obtained:

- ``wall_s``: ``time.perf_counter`` difference.
- ``cpu_s``: ``time.process_time`` difference (user + system time of every thread of
  this process) plus ``resource.getrusage(RUSAGE_CHILDREN)`` user + system of child
  processes that finished and were waited for inside the window.
- ``gpu_s``: ``None`` unless torch is already imported and CUDA is initialised; then the
  device is synchronised at both ends and ``gpu_s`` is the wall time of that window
  (time the GPU was held, not kernel-busy time).
- ``peak_rss_mb``: the highest resident set size of this process, in MiB (2**20 bytes),
  sampled by a background thread through ``psutil`` every ``interval_s`` (20 ms) plus
  once at each end. ``ru_maxrss`` is not used: it is a lifetime peak that cannot be
  reset per window. Spikes shorter than the interval can be missed.
- ``energy_kwh`` / ``energy_method`` / ``energy_detail``: see :mod:`._energy`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, get_args

from ..errors import DataError
from ._energy import EnergyMethod, make_energy_source
from ._model import CostModel

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

__all__ = ["CostRecord", "Meter", "measure"]

_MIB = float(2**20)


@dataclasses.dataclass
class CostRecord:
    """What one run (training, a benchmark window) cost, and how each figure was obtained."""

    wall_s: float
    cpu_s: float
    energy_kwh: float
    energy_method: EnergyMethod
    energy_detail: str
    gpu_s: float | None = None
    peak_rss_mb: float | None = None
    flops: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CostRecord:
        """Rebuild a record written by :meth:`to_dict`; unknown or missing keys raise :class:`DataError`."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise DataError(
                f"Unknown cost-record key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(fields)}."
            )
        required = [n for n, f in fields.items() if f.default is dataclasses.MISSING]
        missing = [n for n in required if n not in data]
        if missing:
            raise DataError(
                f"Cost record is missing {', '.join(map(repr, missing))}; write records with CostRecord.to_dict()."
            )
        if data["energy_method"] not in get_args(EnergyMethod):
            raise DataError(
                f"Unknown energy_method {data['energy_method']!r}; expected one of {get_args(EnergyMethod)}."
            )
        return cls(**data)


def _children_cpu_s() -> float:
    if resource is None:  # pragma: no cover
        return 0.0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _cuda() -> Any | None:
    """torch, when it is already imported and CUDA is initialised; never imports torch itself."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch
    except Exception:  # pragma: no cover - broken CUDA setups
        return None
    return None


_PROCESS: Any = None


def _process() -> Any:
    """This process's ``psutil.Process``, cached (re-made after a fork)."""
    global _PROCESS
    import psutil

    if _PROCESS is None or _PROCESS.pid != os.getpid():
        _PROCESS = psutil.Process()
    return _PROCESS


class _RssSampler(threading.Thread):
    def __init__(self, interval_s: float) -> None:
        super().__init__(name="fulcrum-rss-sampler", daemon=True)
        self._proc = _process()
        self._interval = interval_s
        self._halt = threading.Event()
        self.peak = self._proc.memory_info().rss

    def sample(self) -> None:
        self.peak = max(self.peak, self._proc.memory_info().rss)

    def run(self) -> None:
        while not self._halt.wait(self._interval):
            self.sample()

    def finish(self) -> float:
        self._halt.set()
        self.join()
        self.sample()
        return self.peak / _MIB


class Meter:
    """Measures one window of work; ``start()`` then ``stop()`` (or use it as a context manager).

    ``energy``: ``"auto"`` (RAPL when readable, else the TDP estimate; cheap),
    ``"rapl"`` (fail when not readable), ``"estimate"``, or ``"codecarbon"`` (about
    1.5 s to start; keep it out of tight loops). Set :attr:`flops` during the
    window to have it copied into the record.
    """

    def __init__(
        self,
        energy: str = "auto",
        *,
        cost_model: CostModel | None = None,
        sample_memory: bool = True,
        interval_s: float = 0.02,
        country_iso_code: str = "USA",
    ) -> None:
        self.cost_model = cost_model or CostModel()
        self._energy = make_energy_source(energy, self.cost_model, country_iso_code)
        self.sample_memory = sample_memory
        self.interval_s = interval_s
        self.flops: int | None = None
        self.record: CostRecord | None = None
        self._sampler: _RssSampler | None = None
        self._running = False

    def start(self) -> Meter:
        if self._running:
            raise RuntimeError("Meter is already running; call stop() before starting it again.")
        self.record = None
        if self.sample_memory:
            self._sampler = _RssSampler(self.interval_s)
            self._sampler.start()
        self._energy.start()
        torch = _cuda()
        if torch is not None:
            torch.cuda.synchronize()
        self._t0 = time.perf_counter()
        self._cpu0 = time.process_time()
        self._child0 = _children_cpu_s()
        self._running = True
        return self

    def stop(self) -> CostRecord:
        if not self._running:
            raise RuntimeError("Meter.stop() called before start(); use `with measure() as m:`.")
        torch = _cuda()
        if torch is not None:
            torch.cuda.synchronize()
        wall = time.perf_counter() - self._t0
        cpu = (time.process_time() - self._cpu0) + (_children_cpu_s() - self._child0)
        self._running = False
        gpu_s = wall if torch is not None else None
        energy = self._energy.stop(cpu, gpu_s)
        peak = self._sampler.finish() if self._sampler is not None else None
        self._sampler = None
        self.record = CostRecord(
            wall_s=wall,
            cpu_s=cpu,
            energy_kwh=energy.kwh,
            energy_method=energy.method,
            energy_detail=energy.detail,
            gpu_s=gpu_s,
            peak_rss_mb=peak,
            flops=self.flops,
        )
        return self.record

    def __enter__(self) -> Meter:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextmanager
def measure(
    energy: str = "auto",
    *,
    cost_model: CostModel | None = None,
    sample_memory: bool = True,
    interval_s: float = 0.02,
    country_iso_code: str = "USA",
) -> Iterator[Meter]:
    """Measure the ``with`` block; the :class:`CostRecord` is on ``meter.record`` afterwards."""
    meter = Meter(
        energy,
        cost_model=cost_model,
        sample_memory=sample_memory,
        interval_s=interval_s,
        country_iso_code=country_iso_code,
    )
    meter.start()
    try:
        yield meter
    finally:
        meter.stop()
