"""Training a keyword spotter, top to bottom.

1. find the audio column (base64 clips, or a column of paths read from inside the dataset root) and the label;
   decode every clip once under the limits (a bad one is one DataError naming its row), mono, 16 kHz, cut or
   padded to ``seconds``;
2. split train / validation / test: by speaker when the table names them (``group_column``, default
   ``speaker``: the test split holds voices the model never heard), else stratified (the shared splitter);
3. train log-mel front end + small CNN through the shared Trainer (early stopping on validation loss, best
   weights kept), with time-shift, gain and noise augmentation of training waveforms only;
4. export one graph from PCM (front end in ONNX ops, BatchNorm folded), check it against the torch model and the
   front end against numpy's FFT, score it on the test split; logistic regression on the mean log-mel is the
   baseline recorded beside it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ...errors import DataError, SchemaError
from .._base import Trained
from .. import _media as media
from .._media import OOD_BASIS, Prepared
from .._metrics import classification_metrics
from ._config import SpeechConfig
from ._data import FILES, SAMPLE_RATE, audio_columns, decode_audio, fix_length, load_paths, path_columns
from ._features import FeatureParams

__all__ = ["fit_speech", "prepare_splits", "Prepared", "SpeechNet"]

PARITY_ROWS = 200
SPEECH_LIBRARIES = ("soundfile", "scipy")  # audio decoding and resampling, besides library_versions' own


def _say(log: Callable[[str], None] | None) -> Callable[[str], None]:
    return log or (lambda msg: None)


def _root(cfg: SpeechConfig, source: str) -> Path:
    return media.dataset_root(cfg.audio_root, source)


def resolve_columns(frame: pd.DataFrame, cfg: SpeechConfig, source: str) -> tuple[pd.DataFrame, str, str]:
    """(table with an audio column, its name, the target)."""
    return media.resolve_file_column(
        frame, cfg.target, cfg.audio_column, FILES, encoded=audio_columns, paths=path_columns,
        load=lambda f, c: load_paths(f, c, _root(cfg, source), max_bytes=cfg.max_bytes, max_seconds=cfg.max_seconds),
        missing="No column holds audio (base64 WAV/FLAC) or audio paths (names ending in .wav/.flac) besides the "
                "target; pass audio_column=NAME, or train without --task speech.")


def decode_column(values: Sequence[Any], cfg: SpeechConfig, column: str, samples: int) -> np.ndarray:
    out = np.zeros((len(values), samples), np.float32)
    for i, v in enumerate(values):
        try:
            out[i] = fix_length(decode_audio(v, max_bytes=cfg.max_bytes, max_seconds=cfg.max_seconds,
                                             where=f"{column!r} at row {i} (0-based)"), samples)
        except SchemaError as exc:
            raise DataError(str(exc)) from None
    return out


def _group_split(df: pd.DataFrame, group: str, cfg: SpeechConfig) -> tuple[pd.DataFrame, ...]:
    groups = sorted(map(str, df[group].astype(str).unique()))
    rng = np.random.default_rng(cfg.seed)
    order = [groups[i] for i in rng.permutation(len(groups))]
    n_test = max(1, int(round(cfg.test_size * len(groups))))
    n_val = max(1, int(round(cfg.val_size * len(groups))))
    test_g, val_g = set(order[:n_test]), set(order[n_test: n_test + n_val])
    g = df[group].astype(str)
    return df[~g.isin(test_g | val_g)], df[g.isin(val_g)], df[g.isin(test_g)]


def prepare_splits(frame: pd.DataFrame, cfg: SpeechConfig, source: str = "dataframe",
                   log: Callable[[str], None] | None = None) -> Prepared:
    from ... import data as D

    say = _say(log)
    frame, col, target = resolve_columns(frame, cfg, source)
    group = cfg.group_column or ("speaker" if "speaker" in frame.columns and "speaker" != target else None)
    if group is not None and group not in frame.columns:
        raise DataError(f"No group column {group!r} in the data; its columns are {list(map(str, frame.columns))[:10]}.")
    D.check_target(frame, target, "classification")  # one class -> DataError
    keep = [col, target] + ([group] if group else [])
    df, n_dropped = D.check_target(frame[keep], target, "classification")
    if n_dropped:
        say(f"note: dropped {n_dropped} row(s) with a missing target {target!r}")
    df = df.reset_index(drop=True)
    p = FeatureParams(samples=int(round(cfg.seconds * SAMPLE_RATE)), n_mels=int(cfg.n_mels))
    waves = decode_column(df[col].tolist(), cfg, col, p.samples)
    df["__i"] = np.arange(len(df))
    if group and df[group].nunique() >= 3:
        train, val, test = _group_split(df, group, cfg)
        split = f"by {group!r}: {train[group].nunique()} / {val[group].nunique()} / {test[group].nunique()} speakers"
    else:
        if group:
            say(f"note: {group!r} names fewer than 3 speakers; splitting clips, not speakers")
        train, val, test = D.train_val_test_split(df, target, task="classification", test_size=cfg.test_size,
                                                  val_size=cfg.val_size, seed=cfg.seed)
        split, group = "stratified by label", None
    codec = D.LabelCodec().fit(df[target])
    parts = {name: waves[part["__i"].to_numpy()] for name, part in (("train", train), ("val", val), ("test", test))}
    strip = tuple(s.drop(columns="__i").reset_index(drop=True) for s in (train, val, test))
    return Prepared(frame=frame, df=df.drop(columns="__i"), column=col, target=target, group=group, split=split,
                    splits=strip, waves=parts, labels=list(codec.classes_), codec=codec, params=p)


def _speech_net() -> Any:
    import torch
    from torch import nn

    from ._features import LogMel

    class SpeechNet(nn.Module):
        """PCM (N, S) -> log-mel (N, 1, T, M) -> the CNN -> (logits, features)."""

        def __init__(self, params: FeatureParams, cnn: nn.Module, band_mean: Any, band_std: Any) -> None:
            super().__init__()
            self.front = LogMel(params, band_mean, band_std)
            self.band_mean = [float(v) for v in band_mean]
            self.band_std = [float(v) for v in band_std]
            self.cnn = cnn
            self.classes = cnn.classes

        def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.cnn(self.front(audio))

    return SpeechNet


def SpeechNet(params: FeatureParams, cnn: Any, band_mean: Any, band_std: Any) -> Any:  # noqa: N802
    return _speech_net()(params, cnn, band_mean, band_std)


def _augment(cfg: SpeechConfig) -> Any:
    if not cfg.augment:
        return None
    import torch

    max_shift = int(cfg.shift_ms * SAMPLE_RATE / 1000)

    def augment(x: torch.Tensor) -> torch.Tensor:  # x: (B, S) waveforms
        with torch.no_grad():
            B, S = x.shape
            if max_shift:
                shift = torch.randint(-max_shift, max_shift + 1, (B, 1), device=x.device)
                idx = torch.arange(S, device=x.device)[None, :] - shift
                valid = (idx >= 0) & (idx < S)
                x = torch.gather(x, 1, idx.clamp(0, S - 1)) * valid
            gain = 10 ** ((torch.rand(B, 1, device=x.device) * 2 - 1) * cfg.gain_db / 20)
            x = x * gain
            snr = cfg.noise_snr_db + torch.rand(B, 1, device=x.device) * (40 - cfg.noise_snr_db)
            rms = x.pow(2).mean(1, keepdim=True).sqrt()
            on = (torch.rand(B, 1, device=x.device) < 0.8).float()
            return x + on * torch.randn_like(x) * rms / 10 ** (snr / 20)

    augment.describe = {"time_shift_ms": cfg.shift_ms, "gain_db": cfg.gain_db,  # type: ignore[attr-defined]
                        "white_noise_snr_db": [cfg.noise_snr_db, 40.0], "noise_probability": 0.8}
    return augment


def _train(model: Any, X_tr: np.ndarray, y_tr: np.ndarray, X_va: np.ndarray, y_va: np.ndarray, cfg: SpeechConfig,
           callbacks: Sequence[Any] = (), checkpoint_dir: Path | None = None, augment: Any = None,
           desc: str = "train kws") -> Any:
    """The shared Trainer, early-stopped on the validation **loss**: on a validation split of a dozen clips the
    accuracy moves in steps of 1/12 and an early lucky epoch ties every later one, so the best weights were
    often an under-trained model (test accuracy 0.5 where the loss-chosen epoch gets 0.86-0.93)."""
    from ..image._fit import train_cnn

    return train_cnn(model, X_tr, y_tr, X_va, y_va, cfg, callbacks, checkpoint_dir, augment, desc=desc,
                     monitor="val_loss")


def cnn_flops(spec: dict[str, Any], h: int, w: int) -> int:
    total, cin = 0, int(spec["channels"])
    for i, stage in enumerate(spec["widths"]):
        if i > 0:
            h, w = max(1, h // 2), max(1, w // 2)
        for cout in stage:
            total += 2 * 9 * cin * int(cout) * h * w
            cin = int(cout)
    return int(total + 2 * cin * int(spec.get("bands", 1)) * int(spec["classes"]))


def export_package_graph(net: Any, p: FeatureParams, names: list[str], W_tr: np.ndarray, y_tr: np.ndarray,
                         W_va: np.ndarray, augment: Any = None) -> tuple[bytes, np.ndarray, dict[str, float]]:
    """(graph bytes, centroids, OOD thresholds: quantiles of the scores of the training and validation clips and of
    ``augment``-ed views of the training clips; see _media.ood_thresholds)."""
    from .._media import augmented_views, ood_thresholds
    from ..image._cnn import fused_copy, predict_torch
    from ..image._fit import class_centroids, ood_scores
    from ._graph import export_cnn, full_graph

    _, F_tr = predict_torch(net, W_tr, batch=128)
    centroids = class_centroids(F_tr, y_tr, len(names))
    graph = full_graph(export_cnn(fused_copy(net.cnn), p), p, names, centroids, net.band_mean, net.band_std,
                       *ood_levels(W_tr, p))
    va = ood_scores(predict_torch(net, W_va, batch=128)[1], centroids) if len(W_va) else np.zeros(0, np.float32)
    views = [ood_scores(predict_torch(net, W, batch=128)[1], centroids) for W in augmented_views(augment, W_tr)]
    thresholds = ood_thresholds(ood_scores(F_tr, centroids), va, *views)
    return graph.SerializeToString(), centroids, thresholds


SILENCE_MARGIN_DB = 30.0


def clip_levels(W: np.ndarray, p: FeatureParams, silence: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per clip (N, S): its loudest log-mel value, and its loudest frame's log energy (log-sum-exp over the mel
    bands) less the mean over its sounding frames (log energy over ``silence``; all frames when None). The graph
    computes the same from its ``logmel`` edge (see _graph.level_gate)."""
    return _levels(_clip_energies(W, p), silence)


def _clip_energies(W: np.ndarray, p: FeatureParams) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per part of 256 clips, from their log-mel (numpy, the gates' reference): each clip's loudest log-mel value
    (n,) and each frame's log energy, log-sum-exp over the mel bands (n, T)."""
    from scipy.special import logsumexp

    from ._features import logmel_numpy

    out = []
    for s in range(0, len(W), 256):
        L = logmel_numpy(W[s: s + 256], p)[:, 0].astype(np.float64)  # (n, T, M)
        out.append((L.reshape(len(L), -1).max(1), logsumexp(L, axis=2)))
    return out


def _levels(parts: list[tuple[np.ndarray, np.ndarray]], silence: float | None) -> tuple[np.ndarray, np.ndarray]:
    """clip_levels from the parts of :func:`_clip_energies` (see there)."""
    peaks, ranges = [], []
    for peak, e in parts:
        on = e > silence if silence is not None else np.ones_like(e, bool)
        mean_on = (e * on).sum(1) / np.maximum(on.sum(1), 1)
        peaks.append(peak)
        ranges.append(e.max(1) - mean_on)
    if not peaks:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(peaks), np.concatenate(ranges)


def ood_levels(W: np.ndarray, p: FeatureParams) -> tuple[float, float]:
    """(silence_level, steady_level) of the graph's gates from the training clips: the quietest clip's loudest
    log-mel value less 30 dB (ln(1000) in log power), and half the 1st percentile of the clips' rise over their
    mean level. Without training clips: -3.0 (about -55 dBFS of white noise) and 1.0."""
    if not len(W):
        return -3.0, 1.0
    parts = _clip_energies(W, p)  # one log-mel pass for both levels (the frame energies kept, not the log-mel)
    peaks, _ = _levels(parts, None)
    silence = float(peaks.min() - SILENCE_MARGIN_DB / 10 * np.log(10))
    _, ranges = _levels(parts, silence)
    return silence, float(0.5 * np.percentile(ranges, 1))


def _mean_logmel(W: np.ndarray, p: FeatureParams) -> np.ndarray:
    from ._features import logmel_numpy

    out = [logmel_numpy(W[s: s + 256], p)[:, 0] for s in range(0, len(W), 256)]
    F = np.concatenate(out) if out else np.zeros((0, p.frames, p.n_mels), np.float32)
    return np.concatenate([F.mean(1), F.std(1)], axis=1)


def _baseline(W_tr: np.ndarray, y_tr: np.ndarray, W_te: np.ndarray, y_te: np.ndarray, p: FeatureParams,
              seed: int) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not len(W_te) or len(set(y_tr.tolist())) < 2:
        return {}
    t0 = time.perf_counter()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    clf.fit(_mean_logmel(W_tr, p), y_tr)
    acc = float((clf.predict(_mean_logmel(W_te, p)) == y_te).mean())
    return {"model": "logistic regression on the mean and std of each log-mel band", "test_accuracy": acc,
            "fit_s": round(time.perf_counter() - t0, 2)}


def fit_speech(frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
               checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
    import torch
    from safetensors.torch import save

    from ... import data as D
    from ..image._cnn import predict_torch
    from ._cnn import build_kws_cnn
    from ..tabular import library_versions
    from ._features import LogMel, frontend_flops, logmel_numpy
    from ._graph import run_graph, session

    say = _say(log)
    cfg = SpeechConfig.coerce(config)
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir is not None else (Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None)
    prep = prepare_splits(frame, cfg, source, say)
    train, val, test = prep.splits
    p: FeatureParams = prep.params
    k = len(prep.labels)
    names = [str(c) for c in prep.labels]
    y_tr, y_va, y_te = (np.asarray(prep.codec.encode(s[prep.target]), dtype=np.int64) for s in (train, val, test))
    W_tr, W_va, W_te = prep.waves["train"], prep.waves["val"], prep.waves["test"]
    say(f"audio column {prep.column!r}, {k} words, clips of {cfg.seconds:g} s at 16 kHz -> {p.frames} x {p.n_mels} "
        f"log-mel; split {prep.split}; clips: train {len(y_tr)}, validation {len(y_va)}, test {len(y_te)}")

    t0 = time.perf_counter()
    with torch.no_grad():
        F_tr = LogMel(p)(torch.from_numpy(W_tr)).numpy()[:, 0]  # (N, T, M)
    band_mean = F_tr.mean(axis=(0, 1)).astype(float).tolist()
    band_std = np.maximum(F_tr.std(axis=(0, 1)), 1e-3).astype(float).tolist()
    pre_s = time.perf_counter() - t0

    torch.manual_seed(cfg.seed)
    cnn = build_kws_cnn(k, cfg.width, cfg.depth, cfg.stages, p.n_mels)  # its own (x - 0) / 1: the bands arrive normalized
    spec = cnn.spec()
    net = SpeechNet(p, cnn, band_mean, band_std)
    augment = _augment(cfg)
    say(f"training log-mel + CNN (width {cfg.width}, depth {cfg.depth}, {cfg.stages} stages, "
        f"{sum(q.numel() for q in net.parameters())} parameters) for up to {cfg.epochs} epochs"
        + (f", augmentation: {augment.describe}" if augment is not None else ""))
    t0 = time.perf_counter()
    result = _train(net, W_tr, y_tr, W_va, y_va, cfg, callbacks,
                       ckpt_root / "speech-cnn" if ckpt_root is not None else None, augment, desc="train kws")
    train_s = time.perf_counter() - t0
    net.eval()
    epochs_run = len(result.history)
    p_va, _ = predict_torch(net, W_va, batch=128)
    val_acc = float((p_va.argmax(1) == y_va).mean()) if len(y_va) else math.nan
    say(f"    cnn: validation accuracy = {val_acc:.4f} ({epochs_run} epochs, best {result.best_epoch + 1}"
        f"{', stopped early' if result.stopped_early else ''})")

    t0 = time.perf_counter()
    model_bytes, centroids, thresholds = export_package_graph(net, p, names, W_tr, y_tr, W_va, augment)
    export_s = time.perf_counter() - t0

    # ---- the graph on the test split, from PCM (front end included); parity vs torch and vs numpy's FFT
    sess = session(model_bytes)
    out = run_graph(sess, W_te) if len(y_te) else {
        "probabilities": np.zeros((0, k), np.float32), "ood_score": np.zeros(0, np.float32),
        "label": np.zeros(0, object)}
    test_metrics = classification_metrics(y_te, out["probabilities"], k)
    ref, _ = predict_torch(net, W_te[:PARITY_ROWS], batch=128)
    parity = float(np.abs(out["probabilities"][:PARITY_ROWS] - ref).max()) if len(ref) else 0.0
    if parity > 1e-3:
        raise DataError(f"The exported speech graph disagrees with the torch model on the test split (max |dp| "
                        f"{parity:.2e}); this is a bug, please report it.")
    rows = W_te[:16] if len(W_te) else W_tr[:16]
    with torch.no_grad():
        fe_torch = LogMel(p)(torch.from_numpy(rows)).numpy()
    fe_diff = float(np.abs(fe_torch - logmel_numpy(rows, p)).max())  # before normalization: in log units
    baseline = _baseline(W_tr, y_tr, W_te, y_te, p, cfg.seed)
    say(f"test accuracy = {test_metrics['accuracy']:.4f} (the ONNX graph on {len(y_te)} held-out clips; max |dp| vs "
        f"the torch model {parity:.1e}; log-mel vs numpy FFT {fe_diff:.1e})"
        + (f"; baseline {baseline['model']}: {baseline['test_accuracy']:.4f}" if baseline else ""))

    per_clip = frontend_flops(p) + cnn_flops(spec, p.frames, p.n_mels)
    flops = 3 * per_clip * len(y_tr) * max(1, epochs_run)
    rms = np.sqrt((W_tr.astype(np.float64) ** 2).mean(1)) if len(W_tr) else np.zeros(0)
    profile = {"n_rows": int(len(y_tr)), "audio_column": prep.column, "columns": {},
               "audio": {"rms": media.quantiles(rms), "seconds": cfg.seconds, "sample_rate": SAMPLE_RATE},
               "ood": {"score": "1 - max cosine(CNN features, class centroid); 1 for silence or steady noise",
                       "thresholds": thresholds, "thresholds_of": OOD_BASIS},
               "target": {"kind": "categorical", "top": {names[c]: float(np.mean(y_tr == c)) for c in range(k)}}}
    limits = {"max_bytes": int(cfg.max_bytes), "max_seconds": float(cfg.max_seconds),
              "formats": ["WAV", "FLAC", "OGG"], "sample_rate": SAMPLE_RATE}
    weights = save({**{f"model.{n}": t.detach().contiguous() for n, t in cnn.state_dict().items()},
                    "centroids": torch.from_numpy(centroids)})
    manifest: dict[str, Any] = {
        "libraries": library_versions(*SPEECH_LIBRARIES),
        "task": {"workload": "speech", "kind": "classification", "target": prep.target, "labels": prep.labels,
                 "audio_column": prep.column},
        "inputs": [{"name": "audio", "kind": "audio", "dtype": "bytes", "column": prep.column, "limits": limits}],
        "outputs": [{"name": "label", "kind": "label"},
                    {"name": "probabilities", "kind": "probabilities", "labels": prep.labels},
                    {"name": "ood_score", "kind": "ood_score", "thresholds": thresholds,
                     "description": profile["ood"]["score"]}],
        "model": {"family": "cnn", "spec": spec, "features": p.to_dict(),
                  "normalize": {"band_mean": band_mean, "band_std": band_std,
                                "of": "each log-mel band over the training split (in the graph's front end)"},
                  "resampler": "scipy.signal.resample_poly (polyphase FIR, Kaiser window)",
                  "fixed_length": "shorter clips centred between zeros; from longer ones the window with the most energy",
                  "augmentation": getattr(augment, "describe", None), "epochs": epochs_run,
                  "best_epoch": result.best_epoch + 1, "stopped_early": result.stopped_early,
                  "parameters": int(sum(q.numel() for q in cnn.parameters())), "flops_per_clip": per_clip},
        "onnx": {"opset": 18, "input": f"audio float32 (N, {p.samples}): mono PCM at 16 kHz in [-1, 1]",
                 "in_graph": "log-mel (framing, windowed DFT, power, mel filterbank, log), normalization, CNN",
                 "outside_graph": "decoding WAV/FLAC, channel averaging, resampling, fixed length (the codec)",
                 "parity_max_abs_diff": parity, "parity_rows": int(len(ref)), "logmel_vs_numpy_fft": fe_diff,
                 "export_s": round(export_s, 2), "quantize_scope": "logmel"},
        "config": cfg.to_dict(),
        "data": {"source": source, "fingerprint": D.fingerprint(frame.reset_index(drop=True)),
                 "rows": {"train": int(len(y_tr)), "validation": int(len(y_va)), "test": int(len(y_te))},
                 "split": prep.split, "dropped_rows": int(len(prep.frame) - len(prep.df))},
        "metrics": {"primary": {"name": "accuracy", "value": test_metrics.get("accuracy"), "split": "test"},
                    "validation": classification_metrics(y_va, p_va, k) if len(y_va) else None,
                    "test": test_metrics, "baseline": baseline or None,
                    "timing_s": {"preprocess": round(pre_s, 2), "train": round(train_s, 2)}},
        "lineage": {"parent": None, "data_source": source},
    }
    files = {"model.onnx": model_bytes, "profile.json": json.dumps(profile, sort_keys=True).encode(),
             "history.json": json.dumps(result.history).encode(), "weights.safetensors": weights}
    test_frame = test[[prep.column, prep.target]].rename(columns={prep.column: "audio"})
    return Trained(manifest, files, test_frame=test_frame.reset_index(drop=True), training_flops=int(flops),
                   flops_methods={"cnn": "front end (DFT + mel MatMuls) + 2 x 9 x C_in x C_out x H x W per "
                                         "convolution, x3 for a training step, x clips x epochs"},
                   extra={"model": net, "waves": prep.waves, "y": {"train": y_tr, "val": y_va, "test": y_te},
                          "test_outputs": out, "prepared": prep})
