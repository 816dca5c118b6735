"""TranscribeTask: short phrases, audio -> text (CTC over characters, greedy decoding, word error rate).

Data: a table with an audio column (base64 WAV/FLAC/OGG, or paths resolved inside the dataset root only) and a
transcript column (``text``, ``transcript``, ``transcription``, ``sentence`` or ``phrase``, or any target whose
values are mostly several words); ``builtin:speech_phrases`` (``_phrases``). A folder of class subfolders stays
keyword spotting (the ``speech`` task).

Training, top to bottom:

1. decode every clip once under the limits (mono, 16 kHz), refuse one longer than ``seconds`` (the window the
   model hears: a cut clip would lose words), pad it to ``seconds``; normalize the transcripts (``_ctc.normalize``)
   and build the character vocabulary from the training split;
2. split by ``voice`` (else ``speaker``; ``group_column``): the test split holds voices never heard in training;
3. conv + bidirectional GRU (``_ctc.CtcNet``) on the log-mel features, torch ``CTCLoss`` through the shared
   Trainer, early-stopped on the validation CTC loss (validation WER is logged beside it each epoch). The log-mel
   of every clip is computed once (the DFT is most of a training step's arithmetic on a CPU otherwise) and the
   augmentation works on it: a gain is a constant added to the log power, white noise at an SNR is its mel power
   (flat in frequency, weighted by each filter's width, exponentially distributed per frame and band) added to the
   clip's mel power, a time shift rolls the frames;
4. one ONNX graph (opset 20): PCM (N, S) float at 16 kHz -> log-mel -> model -> per-frame ArgMax -> greedy CTC
   collapse and join in ONNX ops -> ``text`` (N,) strings. The decoding is in the graph, not in the task's output
   code, so every runtime (Predictor, server, optimizer, ``onnxruntime`` alone) gets the text from the graph and
   needs no vocabulary; the vocabulary is still stored in the manifest (``model.vocabulary``) for reference.
   Beside it ``ood_score`` (N,), reported per request: 1 - the clip's CTC confidence (``_ctc.confidence_ood``), and
   1 for silence or steady noise (hiss, hum, a tone) by keyword spotting's log-mel level gates (``_graph.level_gate``,
   levels from the training clips: ``_fit.ood_levels``); its thresholds are quantiles of the confidence score of the
   training and validation clips and of augmented views of training clips (``ood_thresholds_of``);
5. score the graph on the test split (WER, CER, exact match), check it against the torch model decoded in numpy,
   and record two baselines: the most common training transcript, and the transcript of the nearest training
   clip by mean and std of each log-mel band (1-nearest-neighbour, standardized features).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from ...config import TaskConfig, TrainConfig, _coerce_and_check
from ...errors import ConfigError, DataError, SchemaError
from .._base import InputCodec, InputField, ReadJson, Task, TaskExample, Trained, VariantKind
from .._graph import cpu_session
from .._media import OOD_BASIS, Prepared, quantiles
from ._data import DEFAULT_MAX_BYTES, SAMPLE_RATE, audio_columns, path_columns

__all__ = ["TranscribeTask", "TranscribeConfig", "fit_transcriber", "prepare_transcripts", "TRANSCRIPT_COLUMNS"]

TRANSCRIPT_COLUMNS = ("text", "transcript", "transcription", "sentence", "phrase")
GROUP_COLUMNS = ("voice", "speaker")
OPSET = 20  # StringConcat
PARITY_ROWS = 200
VIEW_CLIPS = 512  # training clips whose augmented views calibrate the OOD thresholds
MAX_OTHER_COLUMNS = 4
INT8_PARAMS: dict[str, Any] = {"op_types_to_quantize": ["MatMul"], "exclude_prefix": "fe_"}


@dataclasses.dataclass
class TranscribeConfig(TaskConfig):
    """Options of a transcription run (a clip of a short phrase -> its text).

    Clips are decoded, averaged to mono, resampled to 16 kHz and padded to ``seconds`` (a longer clip is refused:
    cutting it would lose words); the graph computes ``n_mels`` log-mel bands (25 ms frames, 10 ms hop) and runs
    two 3x3 convolutions of ``width`` channels (time / ``time_stride``, bands / 4), a ``layers``-layer bidirectional GRU of
    ``hidden`` units and a per-frame classifier over the characters + the CTC blank. ``group_column``: the column
    naming the voice or speaker (None: ``voice``, else ``speaker``, when the table has one); validation and test
    then hold whole voices. Augmentation (training only, on the waveform): a time shift of up to ``shift_ms``, a
    gain of up to +/- ``gain_db`` and white noise at an SNR down to ``noise_snr_db``, then two masks of up to
    ``freq_mask`` mel bands and two of up to ``time_mask`` frames per clip (SpecAugment-like; 0: none).

    Optimization: AdamW at ``lr``, the lr rising linearly over the first ``warmup_steps`` optimizer steps then
    following a cosine to 0, the global gradient norm clipped to ``grad_clip``; ``epochs`` None: as many epochs as
    make about ``steps`` optimizer steps (CTC spends its first few hundred steps on the all-blank output, so a run
    is counted in steps, not passes over a small table). ``max_bytes``: the limit of one encoded clip;
    ``audio_root``: where a table's relative paths are resolved (None: the table's folder).
    """

    MODELS = ("auto", "crnn", "conv")
    WRONG_MODEL = ("model={model!r} is not a transcription model; choose 'crnn' (conv + bidirectional GRU, CTC) or "
                   "'conv' (convolutions only).")
    WRONG_TYPE = "A transcription config is a TranscribeConfig, TrainConfig or dict, not {type}."

    target: str | None = None
    audio_column: str | None = None
    audio_root: str | None = None
    group_column: str | None = None
    model: Literal["auto", "crnn", "conv"] = "auto"
    seconds: float = 3.0
    n_mels: int = 40
    width: int = 32
    hidden: int = 96
    layers: int = 2
    time_stride: int = 4
    utterance_norm: bool = True  # each log-mel band minus its mean over the clip, inside the model
    dropout: float = 0.1
    augment: bool = True
    shift_ms: float = 50.0
    gain_db: float = 6.0
    noise_snr_db: float = 10.0
    freq_mask: int = 6
    time_mask: int = 10
    epochs: int | None = None  # None: enough for about `steps` optimizer steps
    steps: int = 3000  # early stopping on validation ends it sooner (builtin:speech_phrases: best epoch 37 of 55)
    batch_size: int | None = None  # None: 32, or fewer when the training split is small
    lr: float = 2e-3
    warmup_steps: int = 150
    grad_clip: float | None = 5.0
    weight_decay: float = 1e-4
    patience: int = 10
    time_limit: float | None = None  # seconds of training; the run stops after the epoch that passes it
    seed: int = 0
    test_size: float = 0.2
    val_size: float = 0.15
    max_bytes: int = DEFAULT_MAX_BYTES
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 1  # torch CPU threads while training (see fit_transcriber)
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = True
    measure_inference: bool = True

    def __post_init__(self) -> None:
        _coerce_and_check(self)
        for key in ("width", "hidden", "layers", "steps", "patience", "max_bytes", "n_mels", "threads"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)!r}.")
        for key in ("epochs", "grad_clip"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)!r}.")
        if self.batch_size is not None and self.batch_size <= 0:
            raise ConfigError(f"batch_size must be > 0, got {self.batch_size!r}.")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ConfigError(f"time_limit (seconds of training) must be > 0, got {self.time_limit!r}.")
        if not 0.5 <= self.seconds <= 20:
            raise ConfigError(f"seconds (the longest clip the model hears) is between 0.5 and 20, got {self.seconds}.")
        if self.time_stride not in (2, 4):
            raise ConfigError(f"time_stride (frames of 10 ms per output frame) is 2 or 4, got {self.time_stride}.")
        if self.n_mels < 8:
            raise ConfigError(f"n_mels is at least 8, got {self.n_mels}.")
        if not (0 < self.test_size < 1 and 0 < self.val_size < 1) or self.test_size + self.val_size >= 0.9:
            raise ConfigError("test_size and val_size are fractions whose sum stays below 0.9, e.g. 0.2 and 0.15.")
        if self.lr <= 0 or self.weight_decay < 0 or self.shift_ms < 0 or self.gain_db < 0 or not 0 <= self.dropout < 1:
            raise ConfigError("lr must be > 0; weight_decay, shift_ms and gain_db >= 0; dropout in [0, 1).")
        if self.freq_mask < 0 or self.time_mask < 0 or self.warmup_steps < 0:
            raise ConfigError("freq_mask, time_mask and warmup_steps are >= 0 (0: none).")
        if self.freq_mask >= self.n_mels:
            raise ConfigError(f"freq_mask (the widest masked run of mel bands) must be below n_mels ({self.n_mels}), "
                              f"got {self.freq_mask}.")

    @property
    def max_seconds(self) -> float:
        """No duration limit while reading a table's files: :func:`_decode` refuses a clip longer than ``seconds``
        with its own message (requests are limited to ``seconds`` by the manifest's input limits)."""
        return 1e9

    def train_config(self, **changes: Any) -> TrainConfig:
        base = dict(seed=self.seed, epochs=self.epochs or 1, batch_size=self.batch_size or 32, lr=self.lr,
                    weight_decay=self.weight_decay, lr_schedule="warmup_cosine", warmup_steps=self.warmup_steps,
                    grad_clip=self.grad_clip, optimizer="adamw", early_stopping=True, patience=self.patience,
                    device=self.device, progress=self.progress)
        return TrainConfig(**{**base, **changes})


# ----------------------------------------------------------------------------- data


def _texts(values: Sequence[Any]) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in values]


def looks_like_transcripts(frame: pd.DataFrame, column: str) -> bool:
    """A transcript column: named like one (text, transcript, ...) with string values, or string values of which
    at least a fifth hold several words (keyword labels are single words)."""
    s = frame[column]
    if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
        return False
    values = [v for v in s.dropna().head(200).tolist() if isinstance(v, str)]
    if str(column).lower() in TRANSCRIPT_COLUMNS:
        return True
    if not values:
        return False
    return float(np.mean([len(v.split()) > 1 for v in values])) >= 0.2


def transcript_column(frame: pd.DataFrame, target: str | None) -> str | None:
    if target is not None:
        return target if target in frame.columns and looks_like_transcripts(frame, target) else None
    for c in frame.columns:
        if str(c).lower() in TRANSCRIPT_COLUMNS and looks_like_transcripts(frame, c):
            return str(c)
    return None


def _decode(values: Sequence[Any], cfg: TranscribeConfig, column: str, samples: int) -> np.ndarray:
    from ._data import decode_audio, fix_length

    out = np.zeros((len(values), samples), np.float32)
    for i, v in enumerate(values):
        where = f"{column!r} at row {i} (0-based)"
        try:
            x = decode_audio(v, max_bytes=cfg.max_bytes, max_seconds=1e9, where=where)
        except SchemaError as exc:
            raise DataError(str(exc)) from None
        if len(x) > samples:
            raise DataError(f"{where} is {len(x) / SAMPLE_RATE:.2f} s long, longer than the {cfg.seconds:g} s window the "
                            f"model hears (cutting it would lose words); raise seconds (--set seconds="
                            f"{math.ceil(len(x) / SAMPLE_RATE)}) or trim the clip.")
        out[i] = fix_length(x, samples)
    return out


def prepare_transcripts(frame: pd.DataFrame, cfg: TranscribeConfig, source: str = "dataframe",
                        log: Callable[[str], None] | None = None) -> Prepared:
    """Columns resolved, clips read and decoded, transcripts normalized, the split made (by voice when known)."""
    from ._ctc import build_vocab, normalize
    from ._features import FeatureParams
    from ._fit import resolve_columns

    say = log or (lambda msg: None)
    target = cfg.target or transcript_column(frame, None)
    if target is None:
        raise ConfigError(f"No transcript column: name it with --target COLUMN (a column of texts, e.g. "
                          f"{', '.join(TRANSCRIPT_COLUMNS[:3])}); the columns are {list(map(str, frame.columns))[:10]}.")
    if target not in frame.columns:
        raise DataError(f"No transcript column {target!r} in the data; its columns are "
                        f"{list(map(str, frame.columns))[:10]}.")
    frame = frame.copy()
    frame[target] = [normalize(t) for t in _texts(frame[target].tolist())]
    empty = frame[target] == ""
    if bool(empty.all()):
        raise DataError(f"The transcript column {target!r} is empty (no row has a transcript with letters or digits); "
                        "every clip needs its text.")
    if bool(empty.any()):
        say(f"note: dropped {int(empty.sum())} row(s) with an empty transcript in {target!r}")
        frame = frame[~empty].reset_index(drop=True)
    frame, col, _ = resolve_columns(frame, dataclasses.replace(cfg, target=target), source)  # type: ignore[arg-type]
    group = cfg.group_column or next((g for g in GROUP_COLUMNS if g in frame.columns and g != target), None)
    if group is not None and group not in frame.columns:
        raise DataError(f"No group column {group!r} in the data; its columns are {list(map(str, frame.columns))[:10]}.")
    if len(frame) < 3:
        raise DataError(f"{len(frame)} clip(s) with transcripts; a transcriber needs at least 3 (train, validation, "
                        "test), and many more to learn.")
    p = FeatureParams(samples=int(round(cfg.seconds * SAMPLE_RATE)), n_mels=int(cfg.n_mels))
    df = frame[[col, target] + ([group] if group else [])].reset_index(drop=True)
    waves = _decode(df[col].tolist(), cfg, col, p.samples)
    rng = np.random.default_rng(cfg.seed)
    if group and df[group].nunique() >= 3:
        groups = sorted(map(str, df[group].astype(str).unique()))
        order = [groups[i] for i in rng.permutation(len(groups))]
        n_test = max(1, int(round(cfg.test_size * len(groups))))
        n_val = max(1, int(round(cfg.val_size * len(groups))))
        test_g, val_g = set(order[:n_test]), set(order[n_test: n_test + n_val])
        g = df[group].astype(str)
        idx = {"train": np.flatnonzero(~g.isin(test_g | val_g)), "val": np.flatnonzero(g.isin(val_g)),
               "test": np.flatnonzero(g.isin(test_g))}
        split = (f"by {group!r}: {len(groups) - n_test - n_val} / {n_val} / {n_test} (test: "
                 f"{', '.join(sorted(test_g))})")
    else:
        if group:
            say(f"note: {group!r} names fewer than 3 voices; splitting clips, not voices")
            group = None
        perm = rng.permutation(len(df))
        n_test = max(1, int(round(cfg.test_size * len(df))))
        n_val = max(1, int(round(cfg.val_size * len(df))))
        idx = {"test": np.sort(perm[:n_test]), "val": np.sort(perm[n_test: n_test + n_val]),
               "train": np.sort(perm[n_test + n_val:])}
        split = "random clips (seeded)"
    if not len(idx["train"]):
        raise DataError("The training split is empty; give more clips or voices, or lower test_size/val_size.")
    vocab = build_vocab(df[target].iloc[idx["train"]].tolist())
    splits = tuple(df.iloc[idx[k]].reset_index(drop=True) for k in ("train", "val", "test"))
    return Prepared(frame=frame, df=df, column=col, target=target, group=group, split=split, splits=splits,
                    waves={k: waves[v] for k, v in idx.items()}, vocab=vocab, params=p)


# ----------------------------------------------------------------------------- training


def _net(p: Any, cfg: TranscribeConfig, vocab_size: int, band_mean: Any, band_std: Any) -> Any:
    from torch import nn

    from ._ctc import CtcNet
    from ._features import LogMel

    class Transcriber(nn.Module):
        """PCM (N, S) -> log-mel (N, 1, T, M) -> CtcNet -> per-frame logits (N, T', V)."""

        def __init__(self) -> None:
            super().__init__()
            self.front = LogMel(p, band_mean, band_std)
            self.acoustic = CtcNet(p.n_mels, vocab_size, cfg.width, cfg.hidden, cfg.layers, cfg.dropout,
                                   cfg.time_stride, cfg.utterance_norm, recurrent=cfg.model != "conv")

        def forward(self, audio: Any) -> Any:
            return self.acoustic(self.front(audio))

    return Transcriber()


def _feature_net(acoustic: Any, band_mean: Any, band_std: Any) -> Any:
    import torch
    from torch import nn

    class FeatureNet(nn.Module):
        """Raw log-mel (N, 1, T, M) -> per-band normalization -> the acoustic model (shared with the full net)."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(band_mean, dtype=torch.float32), persistent=False)
            self.register_buffer("std", torch.tensor(band_std, dtype=torch.float32), persistent=False)
            self.acoustic = acoustic

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.acoustic((x - self.mean) / self.std)

    return FeatureNet()


def _augment_features(cfg: TranscribeConfig, p: Any) -> Any:
    """Gain, white noise and time shift on raw log-mel (N, 1, T, M) batches (training only)."""
    if not cfg.augment:
        return None
    import torch

    from ._features import mel_filterbank

    width = torch.from_numpy(mel_filterbank(p).sum(0).astype(np.float32))
    shape = width / width.mean()  # white noise's mel power per band, relative to the mean over bands
    max_shift = int(round(cfg.shift_ms / 1000 * p.sample_rate / p.hop))
    ln10 = math.log(10.0)

    def augment(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            B = x.shape[0]
            s = shape.to(x.device)
            gain = (torch.rand(B, 1, 1, 1, device=x.device) * 2 - 1) * cfg.gain_db * ln10 / 10
            x = x + gain
            power = torch.exp(x) - p.eps
            snr = cfg.noise_snr_db + torch.rand(B, 1, 1, 1, device=x.device) * (40 - cfg.noise_snr_db)
            level = power.mean(dim=(2, 3), keepdim=True) * torch.exp(-snr * ln10 / 10)
            on = (torch.rand(B, 1, 1, 1, device=x.device) < 0.8).float()
            noise = on * level * s * torch.empty_like(x).exponential_()
            x = torch.log(power.clamp_min(0) + noise + p.eps)
            if max_shift:
                shifts = torch.randint(-max_shift, max_shift + 1, (B,)).tolist()
                x = torch.stack([torch.roll(x[i], k, dims=1) for i, k in enumerate(shifts)])
            fill = x.mean(dim=(2, 3), keepdim=True).expand_as(x)  # a masked cell reads the clip's mean log power
            for widest, axis in ((cfg.freq_mask, 3), (cfg.time_mask, 2)):
                n = x.shape[axis]
                for _ in range(2 if widest else 0):
                    w = torch.randint(0, widest + 1, (B, 1, 1, 1), device=x.device)
                    start = (torch.rand(B, 1, 1, 1, device=x.device) * (n - w + 1)).long()
                    at = torch.arange(n, device=x.device).view([1, 1, 1, n] if axis == 3 else [1, 1, n, 1])
                    x = torch.where((at >= start) & (at < start + w), fill, x)
            return x

    augment.describe = {"domain": "log-mel", "time_shift_ms": cfg.shift_ms,  # type: ignore[attr-defined]
                        "gain_db": cfg.gain_db, "white_noise_snr_db": [cfg.noise_snr_db, 40.0],
                        "noise_probability": 0.8, "freq_masks": [2, cfg.freq_mask],
                        "time_masks": [2, cfg.time_mask]}
    return augment


def _deadline(seconds: float) -> Any:
    """A Trainer callback that ends the run after the epoch that passes ``seconds`` (best weights kept)."""
    from ...training import Callback

    class Deadline(Callback):
        def __init__(self) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, trainer: Any, epoch: int, logs: Any) -> None:
            if time.perf_counter() - self.t0 > seconds:
                trainer.stop_training = True

    return Deadline()


def _ctc_loss() -> Any:
    import torch
    from torch import nn

    class CtcLoss(nn.Module):
        """torch CTCLoss on (N, T', V) logits and (N, L) 0-padded targets (0 is the blank, never a target)."""

        def __init__(self) -> None:
            super().__init__()
            self.ctc = nn.CTCLoss(blank=0, zero_infinity=True)

        def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            logp = logits.log_softmax(2).transpose(0, 1)  # (T', N, V)
            n, t = logits.shape[0], logits.shape[1]
            lengths = (targets > 0).sum(1)
            return self.ctc(logp, targets, torch.full((n,), t, dtype=torch.long, device=logits.device), lengths)

    return CtcLoss()


def _predict_logits(net: Any, X: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, T', V) per-frame logits of ``net`` (the full net on PCM, or the feature net on raw log-mel)."""
    import torch

    net.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(X), batch):
            out.append(net(torch.from_numpy(np.ascontiguousarray(X[s: s + batch]))).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0, 0), np.float32)


def _predict_ids(net: Any, W: np.ndarray, batch: int = 64) -> np.ndarray:
    logits = _predict_logits(net, W, batch)
    return logits.argmax(2) if logits.size else np.zeros((len(W), 0), np.int64)


def ood_thresholds_of(feature_net: Any, F_tr: np.ndarray, F_va: np.ndarray, augment: Any, seed: int = 0) -> dict[str, float]:
    """The OOD score's thresholds (see _media.ood_thresholds): quantiles of the CTC confidence score
    (:func:`_ctc.confidence_ood`) of the training and validation clips and of augmented views of at most
    ``VIEW_CLIPS`` training clips (a seeded sample: each view is a pass of the model over them), from their raw
    log-mel (N, 1, T, M) through ``feature_net``."""
    from .._media import augmented_views, ood_thresholds
    from ._ctc import confidence_ood

    pick = np.sort(np.random.default_rng(seed).permutation(len(F_tr))[:VIEW_CLIPS])
    views = [confidence_ood(_predict_logits(feature_net, V)) for V in augmented_views(augment, F_tr[pick])]
    scores = [confidence_ood(_predict_logits(feature_net, F)) for F in (F_tr, F_va) if len(F)]
    return ood_thresholds(*scores, *views)


def reference_ood(logits: np.ndarray, W: np.ndarray, p: Any, silence_level: float, steady_level: float) -> np.ndarray:
    """What the graph's ``ood_score`` is, in numpy: the CTC confidence score, 1 for silence or steady noise."""
    from ._ctc import confidence_ood
    from ._fit import clip_levels

    peaks, ranges = clip_levels(W, p, silence_level)
    gated = (peaks < silence_level) | (ranges < steady_level)
    return np.maximum(confidence_ood(logits), gated.astype(np.float32))


def _stats(W: np.ndarray, p: Any) -> np.ndarray:
    from ._features import logmel_numpy

    out = [logmel_numpy(W[s: s + 128], p)[:, 0] for s in range(0, len(W), 128)]
    F = np.concatenate(out) if out else np.zeros((0, p.frames, p.n_mels), np.float32)
    return np.concatenate([F.mean(1), F.std(1)], axis=1)


def baselines(W_tr: np.ndarray, t_tr: Sequence[str], W_te: np.ndarray, t_te: Sequence[str], p: Any) -> dict[str, Any]:
    """WER of the most common training transcript, and of the nearest training clip's transcript (1-NN on the
    standardized mean and std of each log-mel band)."""
    from collections import Counter

    from ._ctc import error_rates

    if not len(t_te) or not len(t_tr):
        return {}
    t0 = time.perf_counter()
    common = Counter(t_tr).most_common(1)[0][0]
    S_tr, S_te = _stats(W_tr, p), _stats(W_te, p)
    mu, sd = S_tr.mean(0), np.maximum(S_tr.std(0), 1e-6)
    A, B = (S_tr - mu) / sd, (S_te - mu) / sd
    d = (B ** 2).sum(1)[:, None] - 2 * B @ A.T + (A ** 2).sum(1)[None, :]
    nn_texts = [t_tr[j] for j in d.argmin(1)]
    most = error_rates(t_te, [common] * len(t_te))
    near = error_rates(t_te, nn_texts)
    best = min((most, "most common transcript"), (near, "1-nearest-neighbour on mean/std log-mel"),
               key=lambda x: x[0]["wer"])
    return {"model": best[1], "test_wer": best[0]["wer"],
            "most_common": {"text": common, "test_wer": most["wer"], "test_cer": most["cer"]},
            "nearest_neighbour": {"features": "mean and std of each log-mel band, standardized on the training "
                                              "split; the nearest training clip's transcript",
                                  "test_wer": near["wer"], "test_cer": near["cer"]},
            "fit_s": round(time.perf_counter() - t0, 2)}


def export_graph(net: Any, p: Any, vocab: Sequence[str], silence_level: float, steady_level: float) -> bytes:
    """The package graph: ``audio`` float32 (N, S) -> ``text`` string (N,) and ``ood_score`` float (N,): 1 - the
    CTC confidence (``_ctc.ood_nodes``), 1 for silence or steady noise (``_graph.level_gate`` on the ``logmel``
    edge, the gates of keyword spotting, with levels from the training clips)."""
    import io
    import warnings

    import onnx
    import torch
    from onnx import TensorProto, helper

    from ._ctc import decoder_nodes, ood_nodes
    from ._features import frontend_nodes
    from ._graph import _constants_to_initializers, level_gate

    acoustic = net.acoustic.eval()
    x = torch.randn(2, 1, p.frames, p.n_mels)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(acoustic, (x,), buf, dynamo=False, opset_version=18, input_names=["logmel"],
                          output_names=["logits"], dynamic_axes={"logmel": {0: "N"}, "logits": {0: "N"}})
    model = _constants_to_initializers(onnx.load_from_string(buf.getvalue()))
    band_mean, band_std = net.front.band_mean.tolist(), net.front.band_std.tolist()
    fe_nodes, fe_inits = frontend_nodes(p, "audio", "logmel", band_mean, band_std)
    dec_nodes, dec_inits = decoder_nodes(vocab, "ids", "text")
    argmax = helper.make_node("ArgMax", ["logits"], ["ids"], axis=2, keepdims=0, name="ctc_argmax")
    conf_nodes, conf_inits = ood_nodes("logits", "ids", "ctc_ood")
    gate_nodes, gate_inits = level_gate(p, "logmel", band_mean, band_std, silence_level, steady_level, "ctc_ood")
    graph = helper.make_graph(
        fe_nodes + list(model.graph.node) + [argmax] + dec_nodes + conf_nodes + gate_nodes, "fulcrum_transcribe",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["N", p.samples])],
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"]),
         helper.make_tensor_value_info("ood_score", TensorProto.FLOAT, ["N"])],
        initializer=fe_inits + list(model.graph.initializer) + dec_inits + conf_inits + gate_inits)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    out.ir_version = 9
    out.producer_name = "fulcrum"
    onnx.checker.check_model(out)
    return out.SerializeToString()


def run_text(sess: Any, W: np.ndarray, batch: int = 128) -> tuple[list[str], np.ndarray]:
    """(texts, ood scores) of the package graph on PCM (N, S)."""
    out: list[str] = []
    ood: list[np.ndarray] = []
    for s in range(0, len(W), batch):
        text, score = sess.run(["text", "ood_score"], {"audio": np.ascontiguousarray(W[s: s + batch])})
        out += [str(t) for t in text.tolist()]
        ood.append(score)
    return out, (np.concatenate(ood) if ood else np.zeros(0, np.float32))


def fit_transcriber(frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
                    checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
    import torch

    cfg = TranscribeConfig.coerce(config)
    before = torch.get_num_threads()
    # one thread by default: this small GRU's steps gain little from more, and on a busy machine torch's extra
    # threads spin waiting for each other (measured on 2 shared cores: 0.14 CPU-s per batch of 32 on one thread,
    # 3-4.6 CPU-s on two)
    torch.set_num_threads(int(cfg.threads))
    try:
        return _fit(frame, cfg, source, callbacks, checkpoint_dir, log)
    finally:
        torch.set_num_threads(before)


def _fit(frame: pd.DataFrame, cfg: TranscribeConfig, source: str, callbacks: Sequence[Any],
         checkpoint_dir: str | Path | None, log: Callable[[str], None] | None) -> Trained:
    import torch
    from safetensors.torch import save

    from ... import data as D
    from ...training import ProgressBar, Trainer
    from ..tabular import library_versions
    from ._ctc import encode_targets, error_rates, greedy_decode
    from ._features import LogMel, frontend_flops
    from ._fit import SPEECH_LIBRARIES, ood_levels

    say = log or (lambda msg: None)
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir is not None else (Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None)
    prep = prepare_transcripts(frame, cfg, source, say)
    train, val, test = prep.splits
    p, vocab, target = prep.params, prep.vocab, prep.target
    t_tr, t_va, t_te = (s[target].tolist() for s in (train, val, test))
    W_tr, W_va, W_te = prep.waves["train"], prep.waves["val"], prep.waves["test"]
    Y_tr, Y_va = encode_targets(t_tr, vocab), encode_targets(t_va, vocab)
    say(f"audio column {prep.column!r}, transcripts {target!r} ({len(vocab) - 1} characters), clips padded to "
        f"{cfg.seconds:g} s at 16 kHz -> {p.frames} x {p.n_mels} log-mel; split {prep.split}; clips: train "
        f"{len(t_tr)}, validation {len(t_va)}, test {len(t_te)}")
    unseen = sorted({c for t in t_va + t_te for c in t} - set(vocab))
    if unseen:
        say(f"note: character(s) {''.join(unseen)!r} appear in validation/test transcripts but not in training; the "
            "model cannot write them")

    t0 = time.perf_counter()

    def logmel(W: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            parts = [LogMel(p)(torch.from_numpy(W[s: s + 128])).numpy() for s in range(0, len(W), 128)]
        return np.concatenate(parts) if parts else np.zeros((0, 1, p.frames, p.n_mels), np.float32)

    F_tr, F_va = logmel(W_tr), logmel(W_va)  # (N, 1, T, M), before normalization
    band_mean = F_tr.mean(axis=(0, 1, 2)).astype(float).tolist()
    band_std = np.maximum(F_tr.std(axis=(0, 1, 2)), 1e-3).astype(float).tolist()
    pre_s = time.perf_counter() - t0

    torch.manual_seed(cfg.seed)
    net = _net(p, cfg, len(vocab), band_mean, band_std)
    augment = _augment_features(cfg, p)
    n_params = int(sum(q.numel() for q in net.parameters()))

    def metric(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        hyps = greedy_decode(out.argmax(2).cpu().numpy(), vocab)
        refs = ["".join(vocab[i] for i in row if i) for row in y.cpu().numpy()]
        return {"wer": float(error_rates(refs, hyps)["wer"] or 0.0)}

    bs = cfg.batch_size if cfg.batch_size is not None else int(min(32, max(4, len(t_tr) // 8)))
    per_epoch = max(1, -(-len(t_tr) // bs))
    epochs = cfg.epochs if cfg.epochs is not None else max(1, -(-cfg.steps // per_epoch))
    # warmup no longer than a fifth of the run (a short run would otherwise never reach lr)
    changes = {"batch_size": bs, "epochs": epochs, "warmup_steps": min(cfg.warmup_steps, epochs * per_epoch // 5)}
    say(f"training log-mel + conv + {'dilated 1-D convolutions' if cfg.model == 'conv' else 'bidirectional GRU'} "
        f"(width {cfg.width}, hidden {cfg.hidden}, {cfg.layers} layers, "
        f"{n_params} parameters), CTC over {len(vocab) - 1} characters, for up to {epochs} epochs of {per_epoch} "
        f"steps (batch {bs}; lr {cfg.lr:g}, warmup {changes['warmup_steps']} steps, cosine; gradient norm clipped "
        f"to {cfg.grad_clip})" + (f", augmentation: {augment.describe}" if augment is not None else ""))
    cbs = list(callbacks) + ([ProgressBar(desc="train ctc")] if cfg.progress else [])
    if cfg.time_limit is not None:
        cbs.append(_deadline(float(cfg.time_limit)))
    t0 = time.perf_counter()
    result = Trainer(cfg.train_config(**changes), callbacks=cbs,
                     checkpoint_dir=ckpt_root / "speech-ctc" if ckpt_root is not None else None, resume=cfg.resume,
                     monitor="val_loss" if len(t_va) else "train_loss").fit(
        _feature_net(net.acoustic, band_mean, band_std), (F_tr, Y_tr), (F_va, Y_va) if len(t_va) else None,
        loss_fn=_ctc_loss(), metric_fn=metric,
        target_dtype=torch.long, augment=augment)
    train_s = time.perf_counter() - t0
    net.eval()
    epochs_run = len(result.history)
    val_hyps = greedy_decode(_predict_ids(net, W_va), vocab) if len(t_va) else []
    val_metrics = error_rates(t_va, val_hyps) if len(t_va) else None
    say(f"    {'conv' if cfg.model == 'conv' else 'crnn'}: validation WER = {val_metrics['wer'] if val_metrics else math.nan:.4f} ({epochs_run} epochs, best "
        f"{result.best_epoch + 1}{', stopped early' if result.stopped_early else ''})")

    t0 = time.perf_counter()
    silence_level, steady_level = ood_levels(W_tr, p)
    thresholds = ood_thresholds_of(_feature_net(net.acoustic, band_mean, band_std), F_tr, F_va, augment, cfg.seed)
    ood_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model_bytes = export_graph(net, p, vocab, silence_level, steady_level)
    export_s = time.perf_counter() - t0
    sess = cpu_session(model_bytes)
    hyps, ood_te = run_text(sess, W_te)
    test_metrics = error_rates(t_te, hyps) if len(t_te) else {"n": 0, "wer": None, "cer": None}
    rows = W_te[:PARITY_ROWS] if len(W_te) else W_tr[:16]
    logits = _predict_logits(net, rows)
    ref = greedy_decode(logits.argmax(2), vocab)
    got, got_ood = (hyps[:PARITY_ROWS], ood_te[:PARITY_ROWS]) if len(W_te) else run_text(sess, rows)
    parity = float(np.mean([a == b for a, b in zip(ref, got)])) if ref else 1.0
    ood_diff = np.abs(got_ood - reference_ood(logits, rows, p, silence_level, steady_level))
    ood_parity = float(np.mean(ood_diff <= 1e-3)) if len(ood_diff) else 1.0
    if parity < 0.95 or ood_parity < 0.95:
        raise DataError(f"The exported transcription graph disagrees with the torch model on {1 - parity:.0%} of "
                        f"{len(ref)} clips' text and {1 - ood_parity:.0%} of their OOD scores; this is a bug, please "
                        "report it.")
    base = baselines(W_tr, t_tr, W_te, t_te, p)
    say(f"test WER = {test_metrics['wer'] if test_metrics['wer'] is not None else math.nan:.4f}, CER = "
        f"{test_metrics['cer'] if test_metrics['cer'] is not None else math.nan:.4f} (the ONNX graph on {len(t_te)} "
        f"held-out clips; same text as the torch model on {parity:.0%} of {len(ref)})"
        + (f"; baseline {base['model']}: WER {base['test_wer']:.4f}" if base else ""))
    if thresholds:
        flagged = float(np.mean(ood_te >= thresholds["p99"])) if len(ood_te) else math.nan
        say(f"OOD score thresholds p95 {thresholds['p95']:.3f} / p99 {thresholds['p99']:.3f} ({ood_s:.1f} s); "
            f"held-out clips at or over p99: {flagged:.1%}")

    per_clip = frontend_flops(p) + net.acoustic.flops(p.frames)
    flops = 3 * per_clip * len(t_tr) * max(1, epochs_run)
    rms = np.sqrt((W_tr.astype(np.float64) ** 2).mean(1)) if len(W_tr) else np.zeros(0)
    words = pd.Series([w for t in t_tr for w in t.split()]).value_counts(normalize=True).head(20)
    ood_what = ("1 - the clip's CTC confidence (the mean posterior of the characters it writes, of every frame's "
                "best symbol when it writes none); 1 for silence or steady noise")
    profile = {"n_rows": int(len(t_tr)), "audio_column": prep.column, "columns": {},
               "audio": {"rms": quantiles(rms), "seconds": cfg.seconds, "sample_rate": SAMPLE_RATE},
               "ood": {"score": ood_what, "thresholds": thresholds, "thresholds_of": OOD_BASIS,
                       "silence_level": silence_level, "steady_level": steady_level},
               "target": {"kind": "text", "words": {str(k): float(v) for k, v in words.items()},
                          "mean_words": float(np.mean([len(t.split()) for t in t_tr])) if t_tr else 0.0}}
    limits = {"max_bytes": int(cfg.max_bytes), "max_seconds": float(cfg.seconds), "formats": ["WAV", "FLAC", "OGG"],
              "sample_rate": SAMPLE_RATE}
    weights = save({f"model.{n}": t.detach().contiguous() for n, t in net.acoustic.state_dict().items()})
    manifest: dict[str, Any] = {
        "libraries": library_versions(*SPEECH_LIBRARIES, "rapidfuzz"),
        "task": {"workload": "transcribe", "kind": "transcription", "target": target, "labels": None,
                 "audio_column": prep.column},
        "inputs": [{"name": "audio", "kind": "audio", "dtype": "bytes", "column": prep.column, "limits": limits}],
        "outputs": [{"name": "text", "kind": "text", "description": "the transcript (greedy CTC decoding, lower case)"},
                    {"name": "ood_score", "kind": "ood_score", "thresholds": thresholds, "description": ood_what}],
        "model": {"family": "conv" if cfg.model == "conv" else "crnn", "spec": net.acoustic.spec(), "features": p.to_dict(), "vocabulary": list(vocab),
                  "normalize": {"band_mean": band_mean, "band_std": band_std,
                                "of": "each log-mel band over the training split (in the graph's front end)"},
                  "transcripts": "lower case, [a-z0-9' ] only, single spaces",
                  "decoding": "greedy CTC in the graph: per-frame ArgMax, repeats and blanks dropped, characters "
                              "joined by a Loop of StringConcat, spaces collapsed",
                  "resampler": "scipy.signal.resample_poly (polyphase FIR, Kaiser window)",
                  "fixed_length": f"clips padded (centred) to {cfg.seconds:g} s; longer clips refused",
                  "augmentation": getattr(augment, "describe", None), "epochs": epochs_run,
                  "best_epoch": result.best_epoch + 1, "stopped_early": result.stopped_early,
                  "parameters": int(sum(q.numel() for q in net.acoustic.parameters())), "flops_per_clip": per_clip},
        "onnx": {"opset": OPSET, "input": f"audio float32 (N, {p.samples}): mono PCM at 16 kHz in [-1, 1]",
                 "in_graph": "log-mel (framing, windowed DFT, power, mel filterbank, log), normalization, conv + "
                             "bidirectional GRU, per-frame ArgMax, greedy CTC collapse and join -> text; CTC "
                             "confidence and the silence / steady-noise gates -> ood_score",
                 "outside_graph": "decoding WAV/FLAC, channel averaging, resampling, padding (the codec)",
                 "parity_same_text": parity, "parity_rows": int(len(ref)), "export_s": round(export_s, 2),
                 "parity_ood_max_abs_diff": float(ood_diff.max()) if len(ood_diff) else 0.0},
        "config": cfg.to_dict(),
        "data": {"source": source, "fingerprint": D.fingerprint(frame.reset_index(drop=True)),
                 "rows": {"train": len(t_tr), "validation": len(t_va), "test": len(t_te)}, "split": prep.split,
                 "dropped_rows": int(len(frame) - len(prep.df))},
        "metrics": {"primary": {"name": "wer", "value": test_metrics.get("wer"), "split": "test"},
                    "validation": val_metrics, "test": test_metrics, "baseline": base or None,
                    "wer_method": "corpus WER: word-level Levenshtein distance (rapidfuzz) summed over clips / "
                                  "reference words",
                    "timing_s": {"preprocess": round(pre_s, 2), "train": round(train_s, 2)}},
        "lineage": {"parent": None, "data_source": source},
    }
    files = {"model.onnx": model_bytes, "profile.json": json.dumps(profile, sort_keys=True).encode(),
             "history.json": json.dumps(result.history).encode(), "weights.safetensors": weights,
             "vocabulary.json": json.dumps(list(vocab)).encode()}
    test_frame = test[[prep.column, target]].rename(columns={prep.column: "audio"})
    return Trained(manifest, files, test_frame=test_frame.reset_index(drop=True), training_flops=int(flops),
                   flops_methods={"crnn": "front end (DFT + mel MatMuls) + convolutions + 3 gates x (input + hidden) "
                                          "x hidden per GRU step and direction + the classifier, x3 for a training "
                                          "step, x clips x epochs"},
                   extra={"model": net, "waves": prep.waves,
                          "test_outputs": {"text": np.asarray(hyps, dtype=object), "ood_score": ood_te},
                          "prepared": prep})


# ----------------------------------------------------------------------------- the task


class TranscribeTask(Task):
    """Transcription of short phrases: a WAV/FLAC clip -> its text (CTC over characters, greedy decoding).

    Data: a table with an audio column (base64 clips) or a column of paths (resolved inside the dataset root
    only) and a transcript column. The package's ``model.onnx`` takes mono PCM at 16 kHz (``audio`` float32
    (N, S)) and writes ``text`` (N,) strings and ``ood_score`` (N,) (1 for silence or steady noise); the primary
    metric is the word error rate (lower is better)."""

    name: ClassVar[str] = "transcribe"
    summary: ClassVar[str] = ("transcription of short spoken phrases: log-mel + conv + bidirectional GRU trained "
                              "with CTC over characters; one graph from 16 kHz PCM to text (greedy decoding inside)")
    kinds: ClassVar[tuple[str, ...]] = ("transcription",)
    config_class: ClassVar[type | None] = TranscribeConfig
    example_programs: ClassVar[tuple[str, ...]] = ("espeak-ng",)

    def example(self) -> TaskExample:
        """6 phrases + 2 digit sequences x 4 voices x 2 variants (64 clips of 1.5 s), synthesized on first use."""
        from ._phrases import synthesize_phrases

        frame = synthesize_phrases(("stop", "go back", "turn left", "turn right", "yes", "no"),
                                   ("en-us", "en-gb", "en-gb-scotland", "en-029"), ("m1", "f1"), numbers=2, seed=0,
                                   seconds=1.5)
        return TaskExample(frame, "text", {"epochs": 3, "hidden": 32, "width": 8, "layers": 1, "seconds": 1.5},
                           "6 phrases + digit sequences spoken by 4 espeak-ng voices (64 clips), held-out voices")

    # ------------------------------------------------------------------ training side

    def detect(self, frame: pd.DataFrame, target: str | None) -> str | None:
        text = transcript_column(frame, target)
        if text is None:
            return None
        found = audio_columns(frame, text)
        what = "audio (WAV/FLAC)"
        if not found:
            found, what = path_columns(frame, text), "audio file paths"
        if not found:
            return None
        others = [c for c in frame.columns if c not in (text, found[0], "path", *GROUP_COLUMNS)]
        if len(others) > MAX_OTHER_COLUMNS:
            return None
        return f"column {found[0]!r} holds {what} and {text!r} their transcripts"

    def fit(self, frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
            checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
        return fit_transcriber(frame, config, source=source, callbacks=callbacks, checkpoint_dir=checkpoint_dir,
                               log=log)

    def evaluate(self, manifest: Mapping[str, Any], truth: Sequence[Any], outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        from ._ctc import error_rates

        texts = outputs.get("text")
        if texts is None:
            texts = next(iter(outputs.values()))
        hyps = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t)
                for t in np.asarray(texts, dtype=object).reshape(-1).tolist()]
        return error_rates(_texts(list(truth)), hyps)

    def splits(self, package: Any, data: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        from .._source import training_table

        m = package.manifest
        frame, src = training_table(package, data, self.read, what="clips")
        prep = prepare_transcripts(frame, TranscribeConfig.coerce({**m["config"], "progress": False}), str(src))
        col = prep.column
        return tuple(s.rename(columns={col: "audio"}) if col != "audio" else s for s in prep.splits)  # type: ignore[return-value]

    # ------------------------------------------------------------------ inference side

    def input_codec(self, manifest: Mapping[str, Any], read_json: ReadJson) -> InputCodec:
        from ._task import audio_codec

        return audio_codec(manifest, _limits(manifest))

    def request_schema(self, manifest: Mapping[str, Any]) -> list[InputField]:
        from ._task import audio_input

        return audio_input(manifest, _limits(manifest), "a clip of a short spoken phrase", "")

    def shorthand(self, manifest: Mapping[str, Any]) -> tuple[str, str] | None:
        return ("audio", "audio")

    def variant_kinds(self, manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
        why = {"int8-static": "the GRU has no static int8 kernel in ONNX Runtime; dynamic int8 of the MatMuls is "
                              "offered instead",
               "pruned": "not offered for transcription yet", "distilled": "not offered for transcription yet",
               "trees": "for tree ensembles only", "shallow": "for tree ensembles only"}
        return [VariantKind("onnx-fp32"), VariantKind("int8-dynamic", "graph", dict(INT8_PARAMS))], why

    def flops_per_prediction(self, manifest: Mapping[str, Any]) -> tuple[int, str]:
        return int(manifest["model"]["flops_per_clip"]), (
            "log-mel front end (2 DFT MatMuls, power, mel MatMul) + 2 convolutions + 3 gates x (input + hidden) x "
            "hidden per GRU step and direction + the per-frame classifier")


def _limits(manifest: Mapping[str, Any]) -> dict[str, Any]:
    for item in manifest.get("inputs") or []:
        lim = item.get("limits") or {}
        if lim.get("max_seconds"):
            return {"max_bytes": int(lim.get("max_bytes") or DEFAULT_MAX_BYTES), "max_seconds": float(lim["max_seconds"])}
    secs = float(manifest["model"]["features"]["samples"]) / SAMPLE_RATE
    return {"max_bytes": DEFAULT_MAX_BYTES, "max_seconds": secs}
