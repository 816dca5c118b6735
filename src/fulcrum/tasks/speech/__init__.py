"""Keyword spotting from raw audio: a folder of class subfolders of WAV/FLAC clips (or a table of clips or paths)
-> log-mel + a small CNN -> one ONNX graph from 16 kHz PCM to label, probabilities and OOD score; and transcription
of short phrases (the ``transcribe`` task: a table of clips and transcripts -> log-mel + conv + bidirectional GRU
trained with CTC -> one ONNX graph from 16 kHz PCM to text).

Modules: ``_data`` (decoding under limits, resampling, fixed length, folders, tables of paths), ``_synth``
(builtin:speech_commands with espeak-ng), ``_features`` (log-mel in numpy, torch and ONNX), ``_config``
(SpeechConfig), ``_graph`` (the whole graph), ``_fit`` (the training run), ``_codec`` (user clips -> feeds),
``_task``; transcription: ``_phrases`` (builtin:speech_phrases), ``_ctc`` (vocabulary, WER, the CTC model, the
in-graph greedy decoder), ``_transcribe`` (TranscribeConfig, the training run, TranscribeTask).
"""

from __future__ import annotations

from ._codec import SpeechCodec
from ._config import SpeechConfig
from ._task import SpeechTask
from ._transcribe import TranscribeConfig, TranscribeTask

__all__ = ["SpeechTask", "SpeechConfig", "SpeechCodec", "TranscribeTask", "TranscribeConfig"]
