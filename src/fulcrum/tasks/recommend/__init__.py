"""Recommendations: (user, item[, rating][, timestamp]) interactions -> the top-k unseen items of a user.

::

    from fulcrum.tasks.recommend import RecommendTask, make_interactions
    frame = make_interactions()                       # seeded interactions with known latent structure
    trained = RecommendTask().fit(frame, {"model": "mf"})
    trained.files["model.onnx"]                       # user (N,) string, k (N,) -> items, scores (N, K)

Modules: ``_data`` (columns, cleaning, split, generator), ``_config``, ``_models`` (popularity, MF, metrics),
``_graph`` (the ONNX graph), ``_fit`` (the run), ``_codec`` (rows -> feeds), ``_task``.
"""

from __future__ import annotations

from ._config import RecommendConfig
from ._data import make_interactions
from ._task import RecommendTask

__all__ = ["RecommendTask", "RecommendConfig", "make_interactions"]
