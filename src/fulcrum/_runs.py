"""Run directories: where a training run keeps its checkpoints until it is registered.

::

    $FULCRUM_HOME/runs/<name>/<config-key>-<id>/
        run.json        {"key", "pid", "started", "config"}
        lock            held (flock) by the live process for as long as the run lives
        checkpoints/    the trainer's atomic per-epoch checkpoints

Every run gets its own directory, so runs of one name never touch each other's files, however
many run at once. The lock tells a live run from an interrupted one: the kernel drops it when
the process ends, killed or not.

- A fresh run removes the *interrupted* runs of its name (nobody holds their lock: "start over")
  and never touches a live one.
- ``resume`` continues the most recent interrupted run of the same name and configuration (same
  key), taking its lock. When the only such run is still live it is an error (wait for it, or stop
  it first); when the interrupted runs of the name have another configuration it is an error as
  before; with nothing to resume the run starts from the beginning, with a notice.
- A run that finishes (registers its version) removes its directory; one that fails keeps it, for
  ``--resume``, when it saved a checkpoint (one that failed before, e.g. on bad data, leaves nothing).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: runs are still separate, liveness is not known
    fcntl = None  # type: ignore[assignment]

__all__ = ["Run", "open_run"]

RUN_FILE = "run.json"
LOCK_FILE = "lock"
_TMP = ".tmp-"


def _lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on ``path``, or None when another process holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino != os.fstat(fd).st_ino:  # removed (and maybe recreated) while we waited
            raise OSError("lock file replaced")
    except OSError:
        os.close(fd)
        return None
    return fd


def _read_run(path: Path) -> dict[str, Any]:
    try:
        with open(path / RUN_FILE, "rb") as f:
            data = json.loads(f.read(1_000_000).decode("utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@dataclass
class Run:
    """A run directory this process owns (its lock held) until :meth:`finish` or :meth:`release`."""

    path: Path
    key: str
    resumed: bool
    _fd: int | None = field(default=None, repr=False)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def release(self) -> None:
        """Let go of the lock and keep the directory (a failed run stays resumable)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def fail(self) -> None:
        """The run failed: keep its directory when it saved a checkpoint (``--resume`` continues from it), else
        remove it, as :meth:`finish` does (a run that failed before training, e.g. on bad data, leaves nothing)."""
        saved = self.checkpoints.is_dir() and any(p.is_file() for p in self.checkpoints.rglob("*"))
        if saved:
            self.release()
        else:
            self.finish()

    def finish(self) -> None:
        """The run is registered: remove its directory (and its name's directory when empty)."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()
        try:
            self.path.parent.rmdir()
        except OSError:
            pass  # other runs of the name, or one being created: leave it


def _candidates(name_dir: Path) -> list[tuple[Path, dict[str, Any], int | None]]:
    """Every run directory of a name: (path, run.json, lock fd when it is interrupted else None)."""
    out = []
    if not name_dir.is_dir():
        return out
    for entry in sorted(name_dir.iterdir()):
        if not entry.is_dir() or entry.is_symlink():
            continue
        fd = _lock(entry / LOCK_FILE)
        if entry.name.startswith(_TMP):  # debris of a creation that died before its rename
            if fd is not None:
                shutil.rmtree(entry, ignore_errors=True)
                os.close(fd)
            continue
        out.append((entry, _read_run(entry), fd))
    return out


def _create(name_dir: Path, key: str, config: dict[str, Any]) -> Run:
    """A new run directory, locked before it gets its final name (so no scan ever sees it unlocked)."""
    for attempt in range(5):
        try:
            name_dir.mkdir(parents=True, exist_ok=True)
            tmp = name_dir / f"{_TMP}{uuid.uuid4().hex}"
            tmp.mkdir()
            break
        except FileNotFoundError:  # the name's directory was removed by a finishing run meanwhile
            if attempt == 4:
                raise
    run_info = {"key": key, "pid": os.getpid(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "config": config}
    (tmp / RUN_FILE).write_text(json.dumps(run_info, sort_keys=True, default=str))
    (tmp / LOCK_FILE).touch()
    fd = _lock(tmp / LOCK_FILE)
    if fd is None:  # pragma: no cover - nobody else knows this directory yet
        raise OSError(f"cannot lock the new run directory {tmp}")
    final = name_dir / f"{key[:12]}-{uuid.uuid4().hex[:8]}"
    os.rename(tmp, final)
    return Run(final, key, resumed=False, _fd=fd)


def open_run(runs_root: Path, name: str, key: str, *, resume: bool, config: dict[str, Any] | None = None,
             log: Callable[[str], None] | None = None) -> Run:
    """The run directory for a training run of ``name`` whose options hash to ``key`` (see the module)."""
    name_dir = Path(runs_root) / name
    found = _candidates(name_dir)
    interrupted = [(p, info, fd) for p, info, fd in found if fd is not None]
    live = [(p, info) for p, info, fd in found if fd is None]
    try:
        if resume:
            same = [(p, fd) for p, info, fd in interrupted if info.get("key") == key]
            if same:
                path, fd = max(same, key=lambda item: _last_progress(item[0]))
                for _, _, other_fd in interrupted:
                    if other_fd is not None and other_fd != fd:
                        os.close(other_fd)
                interrupted = []
                return Run(path, key, resumed=True, _fd=fd)
            running = [(p, info) for p, info in live if info.get("key") == key]
            if running:
                path, info = running[0]
                raise ConfigError(
                    f"--resume: the run of {name!r} with these options is still running (process {info.get('pid', '?')}, "
                    f"directory {path}); wait for it to finish, or stop it and run again with --resume."
                )
            if interrupted:
                raise ConfigError(
                    f"--resume: the interrupted run of {name!r} in {interrupted[0][0]} was made with a different "
                    "configuration; run again with the same options, or without --resume to start over."
                )
            if log is not None:
                log(f"--resume: no interrupted run of {name!r} with these options; starting from the beginning")
        for path, _, _ in interrupted:  # a fresh start: interrupted runs of this name are dropped
            shutil.rmtree(path, ignore_errors=True)
        return _create(name_dir, key, config or {})
    finally:
        for _, _, fd in interrupted:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


def _last_progress(path: Path) -> float:
    """When a run last wrote anything (its newest file's mtime)."""
    newest = 0.0
    for p in path.rglob("*"):
        try:
            newest = max(newest, p.stat().st_mtime)
        except OSError:
            pass
    return newest
