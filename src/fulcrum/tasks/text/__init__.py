"""Text classification from raw strings: a free-text column and a label -> label, probabilities, OOD score.

::

    from fulcrum.tasks.text import TextTask
    task = TextTask()
    task.detect(frame, "label")                       # "column 'text' holds free text (...)" or None
    trained = task.fit(frame, {"target": "label"})    # ngram / minilm / ensemble, picked on validation
    trained.files["model.onnx"]                       # text (N, 1) string -> label, probabilities, ood_score

Modules: ``_data`` (text columns, the text rule, statistics), ``_config`` (TextConfig), ``_ngram`` (the
from-scratch model and its graph), ``_minilm`` (the encoder as a torch module), ``_cache`` (embeddings by
content hash), ``_graph`` (tokenizer-in-graph, MiniLM and ensemble graphs), ``_fit`` (the training run),
``_codec`` (user texts -> feeds), ``_variants`` (int8, distilled student, n-gram fallback), ``_task``.
"""

from __future__ import annotations

from ._codec import TextCodec
from ._config import TextConfig
from ._task import TextTask

__all__ = ["TextTask", "TextConfig", "TextCodec"]
