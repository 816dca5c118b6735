"""Run directories: one per run, locked while live; resume finds the interrupted run of the same options."""

from __future__ import annotations

import pytest

from fulcrum._runs import open_run
from fulcrum.errors import ConfigError


def test_each_run_gets_its_own_directory(tmp_path):
    a = open_run(tmp_path, "iris", "k" * 64, resume=False)
    b = open_run(tmp_path, "iris", "k" * 64, resume=False)  # same name and options, both live
    assert a.path != b.path and a.path.parent == b.path.parent == tmp_path / "iris"
    assert a.path.name.startswith("kkkkkkkkkkkk-")
    a.finish()
    assert not a.path.exists() and b.path.exists()
    b.finish()
    assert not (tmp_path / "iris").exists()


def test_resume_takes_the_interrupted_run_never_a_live_one(tmp_path):
    old = open_run(tmp_path, "iris", "key1", resume=False)
    old.release()  # the process died: its lock is gone, its directory stays
    live = open_run(tmp_path, "iris", "key1", resume=False)  # a fresh start drops interrupted runs...
    assert not old.path.exists()
    crashed = open_run(tmp_path, "iris", "key1", resume=False)  # ...never a live one
    assert live.path.exists()
    crashed.checkpoints.mkdir()
    (crashed.checkpoints / "checkpoint.json").write_text("{}")
    crashed.release()
    resumed = open_run(tmp_path, "iris", "key1", resume=True)
    assert resumed.path == crashed.path and resumed.resumed
    assert (resumed.checkpoints / "checkpoint.json").is_file() and live.path.exists()
    with pytest.raises(ConfigError, match=r"still running \(process \d+"):
        open_run(tmp_path, "iris", "key1", resume=True)  # both runs of these options are live now
    resumed.finish()
    live.finish()


def test_resume_with_other_options_or_nothing_to_resume(tmp_path):
    other = open_run(tmp_path, "iris", "key1", resume=False)
    other.release()
    with pytest.raises(ConfigError, match="different configuration"):
        open_run(tmp_path, "iris", "key2", resume=True)
    assert other.path.exists()  # an error changes nothing
    notices = []
    fresh = open_run(tmp_path, "penguins", "key1", resume=True, log=notices.append)
    assert not fresh.resumed and "starting from the beginning" in notices[0]
    fresh.finish()


def test_a_creation_that_died_before_its_rename_is_cleared(tmp_path):
    debris = tmp_path / "iris" / ".tmp-0123"
    debris.mkdir(parents=True)
    (debris / "lock").touch()
    run = open_run(tmp_path, "iris", "key1", resume=False)
    assert not debris.exists()
    run.finish()
