"""SpeechTask: keyword spotting (a clip -> one of a fixed set of words), behind the task contract (tasks/_base.py).

Variants: ``onnx-fp32`` (ONNX Runtime's offline optimization) and ``int8-static`` (QDQ, weights per channel,
activations calibrated on training clips) of the part after the ``logmel`` edge: the log-mel front end stays
float (a DFT in int8 loses the quiet bands). Pruned and distilled CNNs are not offered yet.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd

from .._media import FolderReading
from .._base import InputCodec, InputField, ReadJson, Task, TaskExample, Trained, VariantKind
from ._codec import SpeechCodec
from ._config import SpeechConfig
from ._data import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS, FILES, audio_columns, path_columns, read_folder

__all__ = ["SpeechTask"]

INT8_PARAMS: dict[str, Any] = {"scope": "logmel", "op_types_to_quantize": ["Conv", "Gemm", "MatMul"],
                               "per_channel": True, "weight_type": "QInt8"}


class SpeechTask(FolderReading, Task):
    """Keyword spotting: WAV/FLAC clips and a label -> label, class probabilities, OOD score.

    Data: a folder of class subfolders of WAV/FLAC files, or a table with an audio column (base64) or a column of
    paths (resolved inside the dataset root only). The package's ``model.onnx`` takes mono PCM at 16 kHz
    (``audio`` float32 (N, S)) and computes its log-mel features itself."""

    name: ClassVar[str] = "speech"
    summary: ClassVar[str] = ("keyword spotting from WAV/FLAC clips: log-mel + a small CNN trained from scratch; one "
                              "graph from 16 kHz PCM (the log-mel front end inside)")
    kinds: ClassVar[tuple[str, ...]] = ("classification",)
    config_class: ClassVar[type | None] = SpeechConfig
    example_programs: ClassVar[tuple[str, ...]] = ("espeak-ng",)
    files = FILES
    encoded_what = "audio (WAV/FLAC)"
    paths_what = "audio file paths"
    tolerated = ("path", "speaker")
    encoded_columns = staticmethod(audio_columns)
    path_columns = staticmethod(path_columns)
    read_folder = staticmethod(read_folder)

    def example(self) -> TaskExample:
        """4 words x 8 espeak-ng speakers x 2 clips (64 clips of 1 s), synthesized on first use (needs espeak-ng)."""
        from ._synth import synthesize

        frame = synthesize(("yes", "no", "up", "down"), ("en-us", "en-gb", "en-gb-scotland", "en-029"), ("m1", "f1"),
                           clips=2, seed=0)
        return TaskExample(frame, "label", {"epochs": 15, "width": 8},
                           "4 command words spoken by 8 espeak-ng voices (64 clips), held-out speakers")

    # ------------------------------------------------------------------ training side

    def fit(self, frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
            checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
        from ._fit import fit_speech

        return fit_speech(frame, config, source=source, callbacks=callbacks, checkpoint_dir=checkpoint_dir, log=log)

    def splits(self, package: Any, data: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        from .._source import training_table
        from ._fit import prepare_splits

        m = package.manifest
        frame, src = training_table(package, data, self.read, what="clips")
        prep = prepare_splits(frame, SpeechConfig.coerce({**m["config"], "progress": False}), str(src))
        return prep.splits

    # ------------------------------------------------------------------ inference side

    def input_codec(self, manifest: Mapping[str, Any], read_json: ReadJson) -> InputCodec:
        return audio_codec(manifest, _limits(manifest))

    def request_schema(self, manifest: Mapping[str, Any]) -> list[InputField]:
        seconds = manifest["model"]["features"]["samples"] / 16000
        return audio_input(manifest, _limits(manifest), "a clip", f", cut or padded to {seconds:g} s")

    def shorthand(self, manifest: Mapping[str, Any]) -> tuple[str, str] | None:
        return ("audio", "audio")

    def variant_kinds(self, manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
        why = {"int8-dynamic": "dynamic int8 quantizes MatMuls only; the model's work is in its convolutions, which "
                               "static int8 (calibrated on training clips) covers",
               "pruned": "not offered for speech yet", "distilled": "not offered for speech yet",
               "trees": "for tree ensembles only", "shallow": "for tree ensembles only"}
        return [VariantKind("int8-static", "graph", dict(INT8_PARAMS)), VariantKind("onnx-fp32")], why

    def flops_per_prediction(self, manifest: Mapping[str, Any]) -> tuple[int, str]:
        m = manifest["model"]
        return int(m["flops_per_clip"]), ("log-mel front end (2 DFT MatMuls, power, mel MatMul) + 2 x 9 x C_in x C_out "
                                          "x H x W per convolution + the head")


def audio_codec(manifest: Mapping[str, Any], lim: Mapping[str, Any]) -> InputCodec:
    """The codec of an audio model (keyword spotting or transcription): clips decoded within ``lim``."""
    return SpeechCodec(int(manifest["model"]["features"]["samples"]), lim["max_bytes"], lim["max_seconds"],
                       manifest["task"].get("audio_column"))


def audio_input(manifest: Mapping[str, Any], lim: Mapping[str, Any], what: str, tail: str) -> list[InputField]:
    """The one request field of an audio model: ``what`` a clip is, ``tail`` how it is fitted to the window."""
    column = manifest["task"].get("audio_column")
    limits: dict[str, Any] = {"max_bytes": lim["max_bytes"], "max_seconds": lim["max_seconds"],
                              "formats": ["WAV", "FLAC", "OGG"]}
    if column and column != "audio":
        limits["aliases"] = [column]
    return [InputField("audio", "audio", ("BYTES",), description=(
        f"{what} (WAV, FLAC or OGG), base64-encoded: at most {lim['max_bytes']} bytes and {lim['max_seconds']:g} s; "
        f"any sample rate and mono or stereo (resampled to 16 kHz mono){tail}"),
        limits=limits, example=_example_clip(int(manifest["model"]["features"]["samples"])))]


def _limits(manifest: Mapping[str, Any]) -> dict[str, Any]:
    for item in manifest.get("inputs") or []:
        lim = item.get("limits") or {}
        if lim.get("max_seconds"):
            return {"max_bytes": int(lim.get("max_bytes") or DEFAULT_MAX_BYTES), "max_seconds": float(lim["max_seconds"])}
    return {"max_bytes": DEFAULT_MAX_BYTES, "max_seconds": DEFAULT_MAX_SECONDS}


@lru_cache(maxsize=2)
def _example_clip(samples: int) -> str:
    """A quiet 440 Hz tone as a base64 WAV: the server's warm-up request and the docs' example."""
    from ._data import to_base64, to_wav

    t = np.arange(samples) / 16000.0
    return to_base64(to_wav((0.1 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)))
