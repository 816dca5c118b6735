"""A run killed mid-way (SIGKILL) and resumed finishes with the same result as an uninterrupted one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import fulcrum
    from fulcrum.training import Callback

    class KillAt(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == int(os.environ.get("KILL_AT", "-1")):
                os.kill(os.getpid(), signal.SIGKILL)   # a hard crash: no cleanup, no finally

    pkg = fulcrum.train("builtin:wine", name=sys.argv[1], model="mlp", epochs=12, dropout=0.2,
                        early_stopping=False, progress=False, resume=sys.argv[2] == "resume",
                        callbacks=[KillAt()])
    print(json.dumps({"metrics": pkg.manifest["metrics"]["test"], "history": json.loads(pkg.read_bytes("history.json"))}))
    """
)


def run(home, name, mode, kill_at=-1):
    env = {**os.environ, "FULCRUM_HOME": str(home), "KILL_AT": str(kill_at)}
    return subprocess.run([sys.executable, "-c", SCRIPT, name, mode], capture_output=True, text=True, env=env)


def test_killed_and_resumed_equals_uninterrupted(tmp_path):
    straight = run(tmp_path / "a", "wine", "fresh")
    assert straight.returncode == 0, straight.stderr
    killed = run(tmp_path / "b", "wine", "fresh", kill_at=5)
    assert killed.returncode == -9  # really killed
    ckpt = json.loads((tmp_path / "b" / "runs" / "wine" / "checkpoints" / "mlp" / "checkpoint.json").read_text())
    assert ckpt["epoch"] == 5
    assert not (tmp_path / "b" / "registry" / "wine").exists()  # nothing half-registered
    resumed = run(tmp_path / "b", "wine", "resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(straight.stdout), json.loads(resumed.stdout)
    assert len(b["history"]) == 12
    assert [h["val_loss"] for h in a["history"]] == [h["val_loss"] for h in b["history"]]
    assert a["metrics"] == b["metrics"]
