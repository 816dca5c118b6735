"""Inference runtime: the Predictor and batch prediction over files."""

from __future__ import annotations

from ._batch import TableWriter, iter_chunks, predict_file
from ._predictor import Predictor

__all__ = ["Predictor", "predict_file", "iter_chunks", "TableWriter"]
