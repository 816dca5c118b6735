"""The set of model versions a server holds, and how references resolve to them at request time.

A server is started with references (*pins*): ``iris`` (the latest version), ``iris@3`` (that
version) or ``iris@production`` (whatever the alias points at). Every ``poll_interval_s`` the
registry's alias and version tables are read; when a pin's target changes, the new version is
loaded *beside* the old one, warmed up, and only then swapped in. A version that fails to load
or warm up leaves the old one serving (and is retried after ``RETRY_FAILED_S``). The old version
keeps answering the requests that already resolved to it and is stopped after a grace period,
so no request fails during a swap. At startup, ``fulcrum serve`` first loads every pin's target
in :meth:`ModelSet.preload`, before binding: a version that does not load stops it with one
error line (a later swap to a bad version, by contrast, leaves the old one serving).

Request-time resolution is in memory: ``name`` -> the first pin for that name; ``name@alias``
-> that pin, else the alias table's last snapshot; ``name@7`` -> version 7 if loaded.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any, Callable

from ..artifact import parse_ref
from ..errors import ArtifactError, FulcrumError, NotFoundError, ServeError
from ..runtime import Batcher
from ._model import ServedModel
from ._spec import ServeSettings

__all__ = ["ModelSet", "Pin", "promotion_summary"]

log = logging.getLogger("fulcrum.serve")

RETRY_FAILED_S = 30.0


def promotion_summary(result: dict[str, Any]) -> dict[str, Any]:
    """What :func:`fulcrum.artifact.promote` returned, flat and JSON-ready: the move (old, new,
    moved, forced, refused, reason, line) and the comparison behind it (metric, old and new
    values, delta, interval, verdict, rows; None where the versions were not compared)."""
    c = result.get("comparison") or {}
    return {
        "name": result.get("name"), "alias": result.get("alias"), "old": result.get("old"), "new": result.get("new"),
        "moved": bool(result.get("moved")), "forced": bool(result.get("forced")), "refused": bool(result.get("refused")),
        "reason": result.get("reason"), "line": result.get("line"),
        "metric": c.get("metric"), "old_value": c.get("old_value"), "new_value": c.get("new_value"),
        "delta": c.get("delta"), "interval": c.get("interval"), "confidence": c.get("confidence"),
        "verdict": c.get("verdict"), "rows": c.get("rows"), "comparable": c.get("comparable"),
        "caveat": c.get("caveat") or c.get("reason"),
    }


def _cannot_serve(pin: Pin, version: int, exc: BaseException, where: Any = None) -> str:
    """One line: which reference cannot be served, why (the package's own error names the file;
    else the package directory ``where`` is named), and the fix."""
    why = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, FulcrumError):
        why = f"{type(exc).__name__}: {why}"
    if where is not None and str(where) not in why:
        why = f"{why.rstrip('.')} (package {where})"
    return (f"Cannot serve {pin.ref}: version {version} does not load: {why.rstrip('.')}. Nothing was served. "
            f"Serve a version that loads (`fulcrum models {pin.name}` lists them; `fulcrum promote {pin.name}@N "
            f"ALIAS` moves an alias to one), or train a new one with `fulcrum train`.")


class Pin:
    __slots__ = ("name", "selector")

    def __init__(self, name: str, selector: int | str | None) -> None:
        self.name = name
        self.selector = selector

    @classmethod
    def parse(cls, ref: str) -> Pin:
        name, selector = parse_ref(ref)
        return cls(name, selector)

    @property
    def ref(self) -> str:
        return self.name if self.selector is None else f"{self.name}@{self.selector}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pin) and (self.name, self.selector) == (other.name, other.selector)

    def __hash__(self) -> int:
        return hash((self.name, self.selector))

    def __repr__(self) -> str:
        return f"Pin({self.ref!r})"


class ModelSet:
    def __init__(
        self,
        registry: Any,
        refs: list[str],
        settings: ServeSettings,
        *,
        on_batch: Callable[[ServedModel, int, int, float], None] | None = None,
        on_loaded: Callable[[ServedModel], None] | None = None,
        on_failed: Callable[[str, int, str], None] | None = None,
        on_retired: Callable[[ServedModel], None] | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.pins: list[Pin] = []
        for ref in refs:
            pin = Pin.parse(ref)
            if pin not in self.pins:
                self.pins.append(pin)
        self.loaded: dict[tuple[str, int], ServedModel] = {}
        self.serving: dict[Pin, int] = {}
        self.aliases: dict[str, dict[str, int]] = {}
        self.latest: dict[str, int] = {}
        self.failed: dict[tuple[str, int], tuple[float, str]] = {}
        self.unresolved: dict[Pin, str] = {}
        self.generation = 0  # bumped on every swap (the OpenAPI document is rebuilt then)
        self._on_batch = on_batch
        self._on_loaded = on_loaded
        self._on_failed = on_failed
        self._on_retired = on_retired
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._preloaded: dict[tuple[str, int], ServedModel] = {}  # loaded by preload(), used by the first refresh

    # -- request time --------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Every pin is serving a loaded, warmed-up version."""
        return bool(self.pins) and all(p in self.serving for p in self.pins)

    def names(self) -> list[str]:
        seen: list[str] = []
        for p in self.pins:
            if p.name not in seen:
                seen.append(p.name)
        return seen

    def default(self, name: str) -> ServedModel | None:
        for p in self.pins:
            if p.name == name and p in self.serving:
                return self.loaded.get((name, self.serving[p]))
        return None

    def resolve(self, ref: str) -> ServedModel:
        """The loaded model ``ref`` names now; ServeError 404 (unknown, not loaded) or 503 (loading)."""
        try:
            name, selector = parse_ref(ref)
        except FulcrumError as exc:
            raise ServeError(str(exc), 404) from None
        if name not in self.names() and not any(k[0] == name for k in self.loaded):
            served = ", ".join(self.names()) or "none"
            raise ServeError(f"Model {name!r} is not served here; models served: {served}.", 404)
        if selector is None:
            model = self.default(name)
            if model is None:
                raise ServeError(f"Model {name!r} is still loading; retry shortly.", 503, {"Retry-After": "1"})
            return model
        pin = Pin(name, selector)
        if pin in self.serving:
            return self.loaded[(name, self.serving[pin])]
        version = selector if isinstance(selector, int) else self.aliases.get(name, {}).get(selector)
        if version is None:
            raise ServeError(f"Model {name!r} has no alias {selector!r}.", 404)
        model = self.loaded.get((name, version))
        if model is None:
            raise ServeError(
                f"{name}@{selector} (version {version}) is not loaded on this server; start it with that reference, "
                "or load it through the admin API.",
                404,
            )
        return model

    def versions_of(self, name: str) -> list[int]:
        return sorted(v for n, v in self.loaded if n == name)

    # -- startup ---------------------------------------------------------------

    def preload(self, *, keep: bool = True) -> list[str]:
        """Load, verify and warm up every pin's current target now, in this thread (before a server
        binds); returns the refs loaded. The first failure raises ArtifactError naming the
        reference, the problem (the file, from the package's own error) and the fix, so that a
        server never starts to serve nothing. ``keep``: hand the loaded models to the first
        :meth:`refresh` instead of loading them again (one process); else drop them (a
        multi-worker supervisor, whose workers load their own)."""
        aliases, latest = self._read_registry()
        self.aliases, self.latest = aliases, latest
        s = self.settings
        done: list[str] = []
        for pin in self.pins:
            target = self._target(pin)
            if target is None:
                raise NotFoundError(f"{pin.ref} does not resolve in registry {self.registry.root}; "
                                    "`fulcrum models` lists what it holds.")
            key = (pin.name, target)
            if key not in self._preloaded:
                try:
                    model = ServedModel.load(self.registry, f"{pin.name}@{target}", monitor=s.monitor,
                                             max_rows=s.max_rows)
                except Exception as exc:  # noqa: BLE001 - any failure is one error line, not a traceback
                    try:
                        where = self.registry.path(f"{pin.name}@{target}")
                    except Exception:  # noqa: BLE001
                        where = None
                    raise ArtifactError(_cannot_serve(pin, target, exc, where)) from exc
                if keep:
                    self._preloaded[key] = model
            done.append(f"{pin.ref} (version {target})")
        return done

    # -- polling and swapping --------------------------------------------------

    def _read_registry(self) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
        conn = self.registry.connect()
        try:
            aliases: dict[str, dict[str, int]] = {}
            for n, a, v in conn.execute("SELECT name, alias, version FROM aliases"):
                aliases.setdefault(n, {})[a] = int(v)
            latest = {n: int(v) for n, v in conn.execute("SELECT name, MAX(version) FROM versions GROUP BY name")}
        finally:
            conn.close()
        return aliases, latest

    def _target(self, pin: Pin) -> int | None:
        if pin.selector is None:
            return self.latest.get(pin.name)
        if isinstance(pin.selector, int):
            return pin.selector if pin.selector <= self.latest.get(pin.name, 0) else None
        return self.aliases.get(pin.name, {}).get(pin.selector)

    async def refresh(self) -> None:
        """Read the registry; load, warm up and swap in every pin whose target changed."""
        async with self._lock:
            self.aliases, self.latest = await asyncio.to_thread(self._read_registry)
            changed = False
            for pin in list(self.pins):
                target = self._target(pin)
                if target is None:
                    self.unresolved[pin] = f"{pin.ref} does not resolve in registry {self.registry.root}"
                    continue
                self.unresolved.pop(pin, None)
                if self.serving.get(pin) == target:
                    continue
                model = await self._ensure_loaded(pin.name, target)
                if model is None:
                    continue  # the old version (if any) keeps serving
                old = self.serving.get(pin)
                self.serving[pin] = target
                changed = True
                log.info("serving %s -> %s@%d%s", pin.ref, pin.name, target, f" (was {old})" if old else "")
            if changed:
                self.generation += 1
            self._preloaded.clear()  # loaded at startup for targets that moved since: never used
            self._retire_unused()

    async def _ensure_loaded(self, name: str, version: int) -> ServedModel | None:
        key = (name, version)
        if key in self.loaded:
            return self.loaded[key]
        failed = self.failed.get(key)
        if failed is not None and time.monotonic() - failed[0] < RETRY_FAILED_S:
            return None
        try:
            model = await self.load(name, version)
        except Exception as exc:  # noqa: BLE001 - a bad version never takes the server down
            msg = f"{type(exc).__name__}: {exc}"
            self.failed[key] = (time.monotonic(), msg)
            log.error("could not load %s@%d, keeping what is served: %s", name, version, msg)
            if self._on_failed is not None:
                self._on_failed(name, version, msg)
            return None
        self.failed.pop(key, None)
        return model

    async def load(self, name: str, version: int) -> ServedModel:
        """Load and warm up ``name@version`` in a thread, start its batcher; raises on failure."""
        s = self.settings
        model = self._preloaded.pop((name, version), None)
        preloaded = model is not None
        if model is None:
            model = await asyncio.to_thread(
                ServedModel.load, self.registry, f"{name}@{version}", monitor=s.monitor, max_rows=s.max_rows
            )
        if model.monitor is not None:
            model.monitor.reset()  # the warm-up row is not traffic: drift and OOD count served rows only
        on_batch = self._on_batch

        def batched(n_req: int, rows: int, seconds: float, _m: ServedModel = model) -> None:
            if on_batch is not None:
                on_batch(_m, n_req, rows, seconds)

        model.batcher = Batcher(model.run_batch, s.spec_for(name), name=model.ref, on_batch=batched)
        await model.batcher.start()
        self.loaded[(name, version)] = model
        # Move everything alive now (libraries, the model) out of the collector's reach: full
        # collections then scan only request garbage, instead of pausing for tens of ms.
        gc.freeze()
        log.info("loaded %s in %.2f s%s", model.ref, model.load_seconds, " (before binding)" if preloaded else "")
        if self._on_loaded is not None:
            self._on_loaded(model)
        return model

    def _retire_unused(self) -> None:
        keep = {(p.name, v) for p, v in self.serving.items() if p in self.pins}
        for key in [k for k in self.loaded if k not in keep]:
            model = self.loaded.pop(key)
            task = asyncio.create_task(self._retire(model))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retire(self, model: ServedModel, grace_s: float | None = None) -> None:
        """Let requests that already resolved to ``model`` finish, then stop its batcher."""
        grace = self.settings.spec_for(model.name).timeout_s + 1.0 if grace_s is None else grace_s
        try:
            await asyncio.sleep(grace)
        finally:  # on server shutdown (cancelled) too
            await model.batcher.stop(drain=True)
        log.info("unloaded %s", model.ref)
        if self._on_retired is not None:
            self._on_retired(model)

    # -- admin ---------------------------------------------------------------

    async def add_pin(self, ref: str) -> ServedModel:
        pin = Pin.parse(ref)
        if pin not in self.pins:
            self.pins.append(pin)
        await self.refresh()
        if pin not in self.serving:
            name, version = pin.name, self._target(pin)
            reason = self.unresolved.get(pin) or (self.failed.get((name, version or 0)) or (0, "not loaded"))[1]
            self.pins.remove(pin)
            raise ServeError(f"Could not load {ref}: {reason}", 422)
        return self.loaded[(pin.name, self.serving[pin])]

    async def remove_pin(self, ref: str) -> None:
        pin = Pin.parse(ref)
        if pin not in self.pins:
            raise ServeError(f"{ref} is not loaded by reference on this server; loaded: {[p.ref for p in self.pins]}.", 404)
        async with self._lock:
            self.pins.remove(pin)
            self.serving.pop(pin, None)
            self.generation += 1
            self._retire_unused()

    async def set_alias(self, name: str, alias: str, version: int, *, force: bool = False) -> tuple[ServedModel, dict[str, Any]]:
        """Load ``name@version`` and warm it up; then move the registry alias through the one
        promotion policy (:func:`fulcrum.artifact.promote`) and swap. Returns the model and what
        ``promote`` returned. A version that fails to load (422), or that ``promote`` refuses
        because it is worse beyond noise (422, unless ``force``), leaves the alias unchanged."""
        from ..artifact import promote, validate_alias
        from ..errors import ConstraintError

        validate_alias(alias)
        async with self._lock:
            self.failed.pop((name, version), None)
            try:
                await asyncio.to_thread(self.registry.resolve, f"{name}@{version}")
            except NotFoundError as exc:
                raise ServeError(str(exc), 404) from None
            model = await self._ensure_loaded(name, version)
            if model is None:
                reason = self.failed.get((name, version), (0, "unknown error"))[1]
                raise ServeError(f"{name}@{version} failed to load; {name}@{alias} is unchanged. {reason}", 422)
            try:
                result = await asyncio.to_thread(promote, self.registry, f"{name}@{version}", alias, force=force,
                                                 strict=True, log=log.info)
            except ConstraintError as exc:
                self._retire_unused()  # the refused version was loaded for nothing
                refused = getattr(exc, "result", None)
                if refused is None:
                    raise
                err = ServeError(
                    f"{refused['line']}. Refused: {refused['reason']}. Send {{\"force\": true}} with the request to "
                    "move it anyway.",
                    422,
                )
                err.detail = promotion_summary(refused)  # type: ignore[attr-defined]
                raise err from None
            except BaseException:
                self._retire_unused()
                raise
        await self.refresh()
        return model, result

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        models = list(self.loaded.values())
        self.loaded.clear()
        self.serving.clear()
        await asyncio.gather(*(m.batcher.stop(drain=True) for m in models if m.batcher is not None), return_exceptions=True)
