"""Two `train` runs of one name at the same time: each has its own run directory and both land.

The runs meet at the end of their second epoch (a file rendezvous), so they overlap for certain,
each with a checkpoint on disk. There each run writes its id into its checkpoint directory and,
once the other has written too, reads it back: a run directory shared with (or wiped by) the other
run shows up as the other's id or a missing file, and that run fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

import fulcrum
from fulcrum.errors import ConfigError

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import fulcrum
    from fulcrum.training import Callback

    me, other, meet = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    class Rendezvous(Callback):
        done = False

        def on_epoch_end(self, trainer, epoch, logs):
            if self.done or epoch != 1 or trainer.checkpoint_dir is None:
                return
            self.done = True
            mine = Path(trainer.checkpoint_dir) / "owner.txt"
            mine.write_text(me)
            (meet / me).touch()
            deadline = time.monotonic() + 300
            while not (meet / other).exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the other run never arrived")
                time.sleep(0.05)
            (meet / ("go-" + me)).touch()
            while not (meet / ("go-" + other)).exists():  # both have read nothing yet: now both read
                time.sleep(0.05)
            owner = mine.read_text() if mine.exists() else "(deleted)"
            if owner != me:
                raise RuntimeError(f"run {me}: its run directory {mine.parent} was touched by {owner}")
            mine.unlink()

    pkg = fulcrum.train("builtin:wine", name="wine", model="mlp", epochs=4, hidden_sizes=[16],
                        early_stopping=False, progress=False, measure_inference=False, callbacks=[Rendezvous()])
    print(json.dumps({"ref": pkg.ref}))
    """
)


def _env(home):
    return {**os.environ, "FULCRUM_HOME": str(home), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_two_concurrent_trains_of_one_name_both_land(tmp_path):
    home, meet = tmp_path / "home", tmp_path / "meet"
    meet.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, me, other, str(meet)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env(home))
             for me, other in (("A", "B"), ("B", "A"))]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    refs = sorted(json.loads(out.strip().splitlines()[-1])["ref"] for out, _ in results)
    assert refs == ["wine@1", "wine@2"]
    reg = fulcrum.Registry(home / "registry")
    assert [(r["name"], r["version"]) for r in reg.list()] == [("wine", 1), ("wine", 2)]
    for ref in refs:
        reg.load(ref)  # both complete and verified
    runs = home / "runs"
    assert not runs.exists() or not [p for p in runs.rglob("*") if p.is_file()]  # finished runs leave nothing


HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import fulcrum
    from fulcrum.training import Callback

    flag = Path(sys.argv[1])

    class Hold(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 1 and not (flag / "go").exists():
                (flag / "holding").touch()
                while not (flag / "go").exists():
                    time.sleep(0.05)

    fulcrum.train("builtin:wine", name="wine", model="mlp", epochs=3, hidden_sizes=[8], early_stopping=False,
                  progress=False, measure_inference=False, callbacks=[Hold()])
    """
)


def test_resume_while_the_same_run_is_live_is_a_clear_error(tmp_path, monkeypatch):
    home, flag = tmp_path / "home", tmp_path / "flag"
    flag.mkdir()
    monkeypatch.setenv("FULCRUM_HOME", str(home))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(flag)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(home))
    try:
        deadline = time.monotonic() + 300
        while not (flag / "holding").exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with pytest.raises(ConfigError, match=r"still running.*process \d+"):
            fulcrum.train("builtin:wine", name="wine", model="mlp", epochs=3, hidden_sizes=[8], early_stopping=False,
                          progress=False, measure_inference=False, resume=True)
    finally:
        (flag / "go").touch()
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert [r["version"] for r in fulcrum.Registry().list()] == [1]
