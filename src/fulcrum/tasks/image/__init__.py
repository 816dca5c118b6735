"""Image classification from raw encoded images: a folder of class subfolders (or a table of images or paths)
-> a small CNN -> one ONNX graph from raw pixels of any size to label, probabilities and OOD score.

Modules: ``_data`` (decoding under limits, folders, tables of paths, built-in digits), ``_config`` (ImageConfig),
``_graph`` (pre-processing in ONNX, the whole graph), ``_cnn`` (the CNN family, BN folding, channel pruning),
``_fit`` (the training run), ``_codec`` (user images -> feeds), ``_variants`` (static int8, pruned, distilled),
``_task``.
"""

from __future__ import annotations

from ._codec import ImageCodec
from ._config import ImageConfig
from ._task import ImageTask

__all__ = ["ImageTask", "ImageConfig", "ImageCodec"]
