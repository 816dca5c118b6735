"""Log-mel features, three ways that must agree: numpy (the reference, ``np.fft.rfft``), torch (training, so
waveform augmentation happens before the features) and ONNX (the package graph's front end).

Parameters (stored in the manifest's ``model.features``)::

    sample_rate 16000, samples S (1 s: 16000), frame n_fft = 400 (25 ms), hop 160 (10 ms), periodic Hann window,
    no centring: T = 1 + (S - n_fft) // hop frames (98 for 1 s); |rfft|^2 over n_fft // 2 + 1 = 201 bins;
    n_mels 40 triangular filters on the HTK mel scale between fmin 20 Hz and fmax 8000 Hz (unnormalized);
    log(mel + 1e-6), then each band minus its training mean, over its training std

In ONNX (opset 18, no STFT op needed): ``Gather`` with a constant (T, n_fft) index matrix frames the PCM,
two ``MatMul`` with the windowed DFT matrices give the real and imaginary parts, then power, a ``MatMul``
with the filterbank, ``Log``. Decoding (WAV/FLAC), channel averaging, resampling and the fixed length happen
before the graph (in the codec): ONNX has no audio decoder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["FeatureParams", "mel_filterbank", "dft_matrices", "frame_index", "logmel_numpy", "LogMel",
           "frontend_nodes", "frontend_flops"]

EPS = 1e-6


@dataclass(frozen=True)
class FeatureParams:
    sample_rate: int = 16000
    samples: int = 16000
    n_fft: int = 400
    hop: int = 160
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float = 8000.0
    eps: float = EPS

    @property
    def frames(self) -> int:
        return 1 + (self.samples - self.n_fft) // self.hop

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "frames": self.frames, "window": "hann (periodic)", "mel_scale": "htk",
                "power": 2, "log": f"ln(mel + {self.eps:g})", "center": False}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureParams":
        return cls(**{k: d[k] for k in ("sample_rate", "samples", "n_fft", "hop", "n_mels", "fmin", "fmax", "eps")})


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(p: FeatureParams) -> np.ndarray:
    """(bins, n_mels) triangular filters, HTK mel scale."""
    freqs = np.linspace(0.0, p.sample_rate / 2, p.bins)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(p.fmin)), _hz_to_mel(np.array(p.fmax)), p.n_mels + 2))
    fb = np.zeros((p.bins, p.n_mels))
    for m in range(p.n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        fb[:, m] = np.maximum(0.0, np.minimum(up, down))
    return fb.astype(np.float32)


def _window(p: FeatureParams) -> np.ndarray:
    n = np.arange(p.n_fft)
    return 0.5 - 0.5 * np.cos(2 * np.pi * n / p.n_fft)


def dft_matrices(p: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) (n_fft, bins), the window folded in: frames @ cos = Re rfft(w x), frames @ sin = Im."""
    n = np.arange(p.n_fft)[:, None]
    k = np.arange(p.bins)[None, :]
    w = _window(p)[:, None]
    ang = 2 * np.pi * n * k / p.n_fft
    return (w * np.cos(ang)).astype(np.float32), (-w * np.sin(ang)).astype(np.float32)


def frame_index(p: FeatureParams) -> np.ndarray:
    return (np.arange(p.frames)[:, None] * p.hop + np.arange(p.n_fft)[None, :]).astype(np.int64)


def logmel_numpy(audio: np.ndarray, p: FeatureParams, band_mean: Any = None, band_std: Any = None) -> np.ndarray:
    """(N, S) PCM -> (N, 1, T, n_mels) log-mel, with numpy's FFT (the reference); bands normalized when given."""
    frames = audio[:, frame_index(p)].astype(np.float64) * _window(p)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    out = np.log(power @ mel_filterbank(p).astype(np.float64) + p.eps)
    if band_mean is not None:
        out = (out - np.asarray(band_mean, np.float64)) / np.asarray(band_std, np.float64)
    return out[:, None].astype(np.float32)


def _torch_module() -> Any:
    import torch
    from torch import nn

    class LogMel(nn.Module):
        """(N, S) PCM -> (N, 1, T, n_mels) log-mel; constant buffers only (nothing learned)."""

        def __init__(self, p: FeatureParams, band_mean: Any = None, band_std: Any = None) -> None:
            super().__init__()
            m = np.zeros(p.n_mels, np.float32) if band_mean is None else np.asarray(band_mean, np.float32)
            sd = np.ones(p.n_mels, np.float32) if band_std is None else np.asarray(band_std, np.float32)
            self.register_buffer("band_mean", torch.from_numpy(m.copy()), persistent=False)
            self.register_buffer("band_std", torch.from_numpy(sd.copy()), persistent=False)
            cos, sin = dft_matrices(p)
            self.register_buffer("index", torch.from_numpy(frame_index(p)), persistent=False)
            self.register_buffer("cos", torch.from_numpy(cos), persistent=False)
            self.register_buffer("sin", torch.from_numpy(sin), persistent=False)
            self.register_buffer("mel", torch.from_numpy(mel_filterbank(p)), persistent=False)
            self.eps = float(p.eps)

        def forward(self, audio: torch.Tensor) -> torch.Tensor:
            frames = audio[:, self.index]                       # (N, T, n_fft)
            power = (frames @ self.cos) ** 2 + (frames @ self.sin) ** 2  # (N, T, bins)
            logmel = torch.log(power @ self.mel + self.eps)              # (N, T, n_mels)
            return ((logmel - self.band_mean) / self.band_std).unsqueeze(1)  # (N, 1, T, n_mels), per band normalized

    return LogMel


def LogMel(p: FeatureParams, band_mean: Any = None, band_std: Any = None) -> Any:  # noqa: N802 - a torch module factory
    return _torch_module()(p, band_mean, band_std)


def frontend_nodes(p: FeatureParams, audio: str = "audio", out: str = "logmel", band_mean: Any = None,
                   band_std: Any = None) -> tuple[list[Any], list[Any]]:
    """(nodes, initializers): ``audio`` float (N, S) -> ``out`` float (N, 1, T, n_mels), each band normalized by the
    training split's mean and std (``band_mean`` / ``band_std``; None: not normalized)."""
    from onnx import helper, numpy_helper

    N = helper.make_node
    cos, sin = dft_matrices(p)
    inits = [numpy_helper.from_array(frame_index(p), "fe_index"), numpy_helper.from_array(cos, "fe_cos"),
             numpy_helper.from_array(sin, "fe_sin"), numpy_helper.from_array(mel_filterbank(p), "fe_mel"),
             numpy_helper.from_array(np.array(p.eps, np.float32), "fe_eps"),
             numpy_helper.from_array(np.array([1], np.int64), "fe_axis1"),
             numpy_helper.from_array(np.zeros(p.n_mels, np.float32) if band_mean is None
                                     else np.asarray(band_mean, np.float32), "fe_band_mean"),
             numpy_helper.from_array(np.ones(p.n_mels, np.float32) if band_std is None
                                     else np.asarray(band_std, np.float32), "fe_band_std")]
    nodes = [N("Gather", [audio, "fe_index"], ["fe_frames"], axis=1, name="fe_frame"),
             N("MatMul", ["fe_frames", "fe_cos"], ["fe_re"], name="fe_dft_re"),
             N("MatMul", ["fe_frames", "fe_sin"], ["fe_im"], name="fe_dft_im"),
             N("Mul", ["fe_re", "fe_re"], ["fe_re2"], name="fe_re2"),
             N("Mul", ["fe_im", "fe_im"], ["fe_im2"], name="fe_im2"),
             N("Add", ["fe_re2", "fe_im2"], ["fe_power"], name="fe_power"),
             N("MatMul", ["fe_power", "fe_mel"], ["fe_melspec"], name="fe_melbank"),
             N("Add", ["fe_melspec", "fe_eps"], ["fe_mel_eps"], name="fe_add_eps"),
             N("Log", ["fe_mel_eps"], ["fe_log"], name="fe_log"),
             N("Sub", ["fe_log", "fe_band_mean"], ["fe_centred"], name="fe_sub_mean"),
             N("Div", ["fe_centred", "fe_band_std"], ["fe_normed"], name="fe_div_std"),
             N("Unsqueeze", ["fe_normed", "fe_axis1"], [out], name="fe_unsqueeze")]
    return nodes, inits


def frontend_flops(p: FeatureParams) -> int:
    """2 DFT MatMuls + power + the filterbank MatMul, per clip."""
    return int(p.frames * (2 * 2 * p.n_fft * p.bins + 3 * p.bins + 2 * p.bins * p.n_mels + 2 * p.n_mels))
