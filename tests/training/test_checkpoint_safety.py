"""A checkpoint that is poisoned, truncated or not a checkpoint at all stops ``fulcrum train --resume``
with one error line naming the file and the fix; it never runs code and never suggests
``weights_only=False``."""

from __future__ import annotations

import io
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

import fulcrum
from fulcrum.cli import main
from fulcrum.errors import TrainingError
from fulcrum.training import Callback, load_checkpoint

TRAIN_ARGS = ["train", "builtin:wine", "--model", "mlp", "--epochs", "4", "--set", "hidden_sizes=[8]",
              "--set", "measure_inference=false", "--no-progress"]


class Crash(Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == 1:
            raise KeyboardInterrupt("simulated crash after epoch 1")


@pytest.fixture(scope="module")
def crashed_home(tmp_path_factory):
    """A FULCRUM_HOME holding the run directory of a run that crashed after epoch 1 (checkpoint on disk)."""
    home = tmp_path_factory.mktemp("crashed")
    with pytest.raises(KeyboardInterrupt):
        fulcrum.train("builtin:wine", model="mlp", epochs=4, hidden_sizes=[8], measure_inference=False,
                      progress=False, registry=home / "registry", callbacks=[Crash()])
    return home


def _checkpoint(home: Path) -> Path:
    found = sorted((home / "runs").rglob("checkpoint.pt"))
    assert len(found) == 1, found
    return found[0]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _raw_pickle(marker: Path, good: bytes) -> bytes:
    return pickle.dumps(_Payload(marker), protocol=2)  # GLOBAL posix.system + REDUCE


def _torch_zip(marker: Path, good: bytes) -> bytes:
    buf = io.BytesIO()
    torch.save({"epoch": 1, "model": _Payload(marker)}, buf)  # torch's own format, poisoned data.pkl
    return buf.getvalue()


def _truncated(marker: Path, good: bytes) -> bytes:
    return good[: len(good) // 2]


def _not_a_checkpoint(marker: Path, good: bytes) -> bytes:
    buf = io.BytesIO()
    torch.save({"epoch": 1, "weights": torch.zeros(3)}, buf)  # loads fine, but is not a training checkpoint
    return buf.getvalue()


def _other_architecture(marker: Path, good: bytes) -> bytes:
    state = torch.load(io.BytesIO(good), weights_only=True)
    state["model"]["net.0.weight"] = torch.zeros(3, 3)  # a checkpoint of another model
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


@pytest.mark.parametrize("make", [_raw_pickle, _torch_zip, _truncated, _not_a_checkpoint, _other_architecture])
def test_bad_checkpoint_on_resume_is_one_error_line(make, crashed_home, fulcrum_home, tmp_path, capsys):
    shutil.copytree(crashed_home / "runs", fulcrum_home / "runs")
    ckpt = _checkpoint(fulcrum_home)
    marker = tmp_path / "payload-ran"
    ckpt.write_bytes(make(marker, ckpt.read_bytes()))
    capsys.readouterr()

    rc = main([*TRAIN_ARGS, "--resume"])

    err = capsys.readouterr().err
    assert rc == 1
    assert not marker.exists(), "the checkpoint's payload was executed"
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err  # other lines are notes ("resuming ...")
    assert str(ckpt) in errors[0]
    assert "delete" in errors[0].lower() and "without --resume" in errors[0]
    assert "weights_only" not in err
    assert not (fulcrum_home / "registry" / "wine").exists()  # nothing registered


def test_checkpoint_that_is_not_a_regular_file_is_refused(crashed_home, fulcrum_home, capsys):
    shutil.copytree(crashed_home / "runs", fulcrum_home / "runs")
    ckpt = _checkpoint(fulcrum_home)
    ckpt.unlink()
    ckpt.symlink_to("/dev/zero")  # read without end if followed
    capsys.readouterr()
    assert main([*TRAIN_ARGS, "--resume"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "not a regular file" in errors[0] and str(ckpt) in errors[0], err


def test_resume_from_an_intact_checkpoint_still_works(crashed_home, fulcrum_home, capsys):
    shutil.copytree(crashed_home / "runs", fulcrum_home / "runs")
    assert load_checkpoint(_checkpoint(fulcrum_home).parent)["epoch"] == 1
    assert main([*TRAIN_ARGS, "--resume", "--json"]) == 0
    assert "wine@1" in capsys.readouterr().out


def test_load_checkpoint_raises_a_training_error_naming_the_file(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80\x02garbage")
    with pytest.raises(TrainingError, match="checkpoint.pt") as info:
        load_checkpoint(tmp_path)
    assert "weights_only" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
