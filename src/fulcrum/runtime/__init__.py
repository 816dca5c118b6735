"""Inference runtime: the Predictor (ONNX Runtime by default, native adapters as the reference),
its engines, batch prediction over files, and the generic adaptive batcher the server uses."""

from __future__ import annotations

from ._batch import TableWriter, iter_chunks, predict_file
from ._batcher import Batcher, BatchSpec
from ._engines import NativeEngine, OnnxEngine
from ._predictor import Predictor

__all__ = ["Predictor", "predict_file", "iter_chunks", "TableWriter", "OnnxEngine", "NativeEngine", "Batcher", "BatchSpec"]
