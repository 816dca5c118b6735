"""A run killed mid-way (SIGKILL) and resumed really resumes, and ends where an uninterrupted run ends.

A seeded restart from scratch gives the same result as a resume, so equality of the
results alone proves nothing: the resumed process must also start at the epoch after
the checkpoint, never run the epochs before it again, and say so in the history it
records (each epoch's ``attempt``: 1 for the first process, 2 after one resume).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

EPOCHS = 6
KILL_AFTER = 2  # the checkpoint of epoch 2 (0-based) is on disk when the process dies

SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import fulcrum
    from fulcrum.training import Callback

    class Watch(Callback):
        # what this process really ran: one list of epochs per training phase (fit, refit)
        def __init__(self):
            self.phases = []

        def on_train_begin(self, trainer):
            self.phases.append({"start_epoch": trainer.start_epoch, "epochs": []})

        def on_epoch_end(self, trainer, epoch, logs):
            self.phases[-1]["epochs"].append(epoch)
            if epoch == int(os.environ["KILL_AT"]) and len(self.phases) == 1:
                os.kill(os.getpid(), signal.SIGKILL)  # a hard crash: no cleanup, no finally

    watch = Watch()
    pkg = fulcrum.train("builtin:wine", name="wine", model="mlp", epochs=int(os.environ["EPOCHS"]),
                        hidden_sizes=[32], dropout=0.2, early_stopping=False, progress=False,
                        measure_inference=False, resume=sys.argv[1] == "resume", callbacks=[watch])
    print(json.dumps({"metrics": pkg.manifest["metrics"]["test"], "phases": watch.phases,
                      "history": json.loads(pkg.read_bytes("history.json"))}))
    """
)


def start(home, mode, kill_at=-1):
    # one thread: the three processes compute with the same float reductions, and a busy machine
    # slows them less
    env = {**os.environ, "FULCRUM_HOME": str(home), "KILL_AT": str(kill_at), "EPOCHS": str(EPOCHS),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def finish(proc):
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_killed_run_resumes_from_its_checkpoint_and_equals_uninterrupted(tmp_path):
    # the uninterrupted run and the run to be killed are independent: run them side by side
    straight_proc, killed_proc = start(tmp_path / "a", "fresh"), start(tmp_path / "b", "fresh", kill_at=KILL_AFTER)
    straight, killed = finish(straight_proc), finish(killed_proc)
    assert straight.returncode == 0, straight.stderr

    assert killed.returncode == -signal.SIGKILL, killed.stderr  # really killed, at the hook
    summaries = list((tmp_path / "b" / "runs").rglob("checkpoint.json"))
    assert len(summaries) == 1, summaries  # the first phase's checkpoint only
    assert json.loads(summaries[0].read_text())["epoch"] == KILL_AFTER
    assert not (tmp_path / "b" / "registry" / "wine").exists()  # nothing half-registered

    resumed = finish(start(tmp_path / "b", "resume"))
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(straight.stdout), json.loads(resumed.stdout)

    # it resumed: the first phase started after the checkpoint and never ran the epochs before it
    fit_phase = b["phases"][0]
    assert fit_phase["start_epoch"] == KILL_AFTER + 1
    assert fit_phase["epochs"] == list(range(KILL_AFTER + 1, EPOCHS))
    # ... and the recorded history says which process computed which epoch
    assert [h["epoch"] for h in b["history"]] == list(range(EPOCHS))
    assert [h["attempt"] for h in b["history"]] == [1] * (KILL_AFTER + 1) + [2] * (EPOCHS - KILL_AFTER - 1)
    assert [h["attempt"] for h in a["history"]] == [1] * EPOCHS
    assert a["phases"][0]["start_epoch"] == 0 and a["phases"][0]["epochs"] == list(range(EPOCHS))

    # and it ends exactly where the uninterrupted run ends
    assert [h["val_loss"] for h in a["history"]] == [h["val_loss"] for h in b["history"]]
    assert a["metrics"] == b["metrics"]
