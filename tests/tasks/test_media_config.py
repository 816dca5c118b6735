"""The image and speech configs refuse bad options with a line naming the option, and hand their training options to
the shared Trainer unchanged (config.NetTaskConfig)."""

import pytest

from fulcrum.errors import ConfigError
from fulcrum.tasks.image._config import ImageConfig
from fulcrum.tasks.speech._config import SpeechConfig

BAD = [({"lr": 0}, "lr must be > 0"), ({"weight_decay": -1}, "weight_decay >= 0"),
       ({"test_size": 0.5, "val_size": 0.5}, "test_size and val_size"), ({"test_size": 0}, "test_size and val_size"),
       ({"batch_size": 0}, "batch_size must be > 0"), ({"epochs": 0}, "epochs must be > 0"),
       ({"width": -2}, "width must be > 0"), ({"epochs": "many"}, "must be an integer")]


@pytest.mark.parametrize("cls", [ImageConfig, SpeechConfig])
@pytest.mark.parametrize("bad,words", BAD)
def test_a_bad_option_is_refused_naming_it(cls, bad, words):
    with pytest.raises(ConfigError, match=words):
        cls(**bad)


@pytest.mark.parametrize("cls,bad,words", [
    (ImageConfig, {"rotate_degrees": 200}, "rotate_degrees"), (ImageConfig, {"image_size": 4}, "image_size"),
    (ImageConfig, {"max_pixels": 0}, "max_pixels"), (SpeechConfig, {"max_seconds": 0}, "max_seconds"),
    (SpeechConfig, {"shift_ms": -5}, "shift_ms"), (SpeechConfig, {"seconds": 30}, "seconds")])
def test_task_own_limits_are_refused_naming_the_option(cls, bad, words):
    with pytest.raises(ConfigError, match=words):
        cls(**bad)


@pytest.mark.parametrize("cls", [ImageConfig, SpeechConfig])
def test_training_options_reach_the_trainer(cls):
    t = cls(lr=0.02, weight_decay=0.5, epochs=7, patience=3, seed=5, batch_size=None).train_config(epochs=2)
    assert (t.lr, t.weight_decay, t.epochs, t.patience, t.seed, t.batch_size) == (0.02, 0.5, 2, 3, 5, 64)
    assert (t.optimizer, t.lr_schedule, t.early_stopping) == ("adamw", "cosine", True)
    assert cls(batch_size=16).train_config().batch_size == 16
