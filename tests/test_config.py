from __future__ import annotations

import json

import pytest

from fulcrum.config import TrainConfig
from fulcrum.errors import ConfigError


def test_defaults_are_valid():
    c = TrainConfig()
    assert c.epochs > 0 and c.hidden_sizes == (128, 64)


def test_unknown_key_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"Unknown config key 'epoch'.*Did you mean 'epochs'"):
        TrainConfig.from_dict({"epoch": 3})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model": "xgboost"}, "choose one of"),
        ({"epochs": 0}, "epochs must be > 0"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"test_size": 1.5}, "fraction"),
        ({"test_size": 0.5, "val_size": 0.45}, "too little to train"),
        ({"dropout": 1.0}, "dropout"),
        ({"epochs": "ten"}, "must be an integer"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"hidden_sizes": [0]}, "hidden_sizes"),
        ({"early_stopping": "yes"}, "true or false"),
    ],
)
def test_bad_values_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(changes)


def test_from_files_json_toml_yaml(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"epochs": 7, "hidden_sizes": [16]}))
    (tmp_path / "c.toml").write_text("epochs = 7\nhidden_sizes = [16]\n")
    (tmp_path / "c.yaml").write_text("epochs: 7\nhidden_sizes: [16]\n")
    for name in ("c.json", "c.toml", "c.yaml"):
        c = TrainConfig.from_file(tmp_path / name)
        assert c.epochs == 7 and c.hidden_sizes == (16,)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_file(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="does not parse"):
        TrainConfig.from_file(tmp_path / "bad.json")
    (tmp_path / "x.ini").write_text("a=1")
    with pytest.raises(ConfigError, match="unknown format"):
        TrainConfig.from_file(tmp_path / "x.ini")
    (tmp_path / "typo.toml").write_text("epochz = 3\n")
    with pytest.raises(ConfigError, match="epochz"):
        TrainConfig.from_file(tmp_path / "typo.toml")


def test_roundtrip_and_replace():
    c = TrainConfig(epochs=3, hidden_sizes=(8, 4))
    assert TrainConfig.from_dict(c.to_dict()) == c
    assert c.replace(lr=0.1).lr == 0.1
