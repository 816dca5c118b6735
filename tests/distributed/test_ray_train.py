"""fulcrum train --backend ray: Ray Train (DDP) gives the same package as a local run, survives a killed worker
from its checkpoint, and refuses what it cannot do with one clear error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fulcrum.training import Callback

pytestmark = pytest.mark.ray

# A run on N workers splits each global batch over them; without dropout only the order of float sums differs,
# so metrics agree to this tolerance (stated in the README's Ray section)
TOLERANCE = {"val_loss": 1e-4, "accuracy": 0.0125}  # 0.0125 = one row of the 80 test rows
KW = dict(target="label", model="mlp", epochs=6, batch_size=32, dropout=0.0, refit=False, progress=False, seed=0)


class KillOnce(Callback):
    """Kills the worker of rank ``rank`` at the end of ``epoch`` (before it reports), on the first attempt only:
    the flag file says it happened. Runs inside the Ray worker (the callback travels with the job)."""

    def __init__(self, flag: str, epoch: int = 3, rank: int = 1) -> None:
        self.flag, self.epoch, self.rank = flag, epoch, rank

    def on_epoch_end(self, trainer, epoch, logs):
        if trainer.rank == self.rank and epoch == self.epoch and not os.path.exists(self.flag):
            Path(self.flag).write_text(f"killed rank {self.rank} at epoch {epoch}, pid {os.getpid()}")
            os._exit(1)


def _history(pkg):
    return json.loads((pkg.path / "history.json").read_text())


def test_ray_training_matches_local_and_resumes_after_a_killed_worker(ray_cluster, blobs_csv, tmp_path):
    from ray import cloudpickle

    import fulcrum

    cloudpickle.register_pickle_by_value(__import__(__name__))  # KillOnce travels by value to the workers
    local = fulcrum.train(str(blobs_csv), name="local", **KW)
    flag = tmp_path / "killed"
    dist = fulcrum.train(str(blobs_csv), name="onray", backend="ray", workers=2, max_failures=2,
                         callbacks=[KillOnce(str(flag))], **KW)

    # a worker really died during epoch 3, and the second attempt continued from the last checkpoint Ray had
    # committed (epoch 1 or 2: the controller collects reports asynchronously), not from epoch 0; each epoch
    # was run once in the history that made the package
    assert flag.read_text().startswith("killed rank 1 at epoch 3")
    hist = _history(dist)
    attempts = [h["attempt"] for h in hist]
    assert [h["epoch"] for h in hist] == list(range(6))
    assert attempts == sorted(attempts) and set(attempts) == {1, 2}
    assert 2 <= attempts.index(2) <= 3, attempts

    # the same kind of package, registered the same way
    m, ml = dist.manifest, local.manifest
    assert sorted(m) == sorted(ml) and sorted(m["files"]) == sorted(ml["files"])
    assert m["model"]["family"] == "mlp" and m["config"]["backend"] == "ray" and m["config"]["workers"] == 2
    assert dist.name == "onray" and dist.version == 1

    # metrics match the single-process run within the stated tolerance
    for a, b in zip(hist, _history(local)):
        assert abs(a["val_loss"] - b["val_loss"]) <= TOLERANCE["val_loss"], (a, b)
    assert abs(m["metrics"]["test"]["accuracy"] - ml["metrics"]["test"]["accuracy"]) <= TOLERANCE["accuracy"]

    # and it predicts like any package
    pred = fulcrum.load("onray")
    out = pred.predict([{"a": 1.0, "b": -0.5, "c": 0.0, "color": "red"}])
    assert len(out) == 1


def test_cli_refuses_ray_training_for_a_model_it_cannot_distribute(blobs_csv, capsys):
    from fulcrum.cli import main

    rc = main(["train", str(blobs_csv), "--target", "label", "--backend", "ray", "--model", "lightgbm",
               "--no-progress"])
    assert rc == 1
    assert "backend='ray' trains the tabular MLP on Ray Train (--model mlp)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers takes a whole number >= 1"),
    (["--max-failures", "-1"], "--max-failures takes a whole number >= 0"),
    (["--gpus-per-worker", "-1"], "--gpus-per-worker takes a number >= 0"),
])
def test_cli_refuses_bad_ray_options(blobs_csv, capsys, argv, message):
    from fulcrum.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", str(blobs_csv), "--target", "label", "--backend", "ray", "--model", "mlp", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
