"""Images and speech: the package's ONNX Runtime graph (pre-processing included) against torch eager running the same
model with the same pre-processing, at batch 1 and 64, and static int8 against fp32 with the metric kept. One run,
side by side, interleaved rounds.

What is timed, for both engines alike: from **decoded** inputs to class probabilities. Decoding the files (PNG with
Pillow, WAV with soundfile) is excluded on both sides: it is the same code before either engine.

image   uint8 (H, W, C) pixels -> per image: crop to its size, float, resize to the training size (linear,
        antialiased, half-pixel), / 255 -> normalize -> CNN (BatchNorm folded on both sides) -> softmax.
        ORT: the package's model.onnx (a Loop over the batch does the resize). torch: the same steps with
        ``F.interpolate(mode="bilinear", antialias=True)`` per image, then one batched forward.
speech  float32 PCM (N, 16000) at 16 kHz -> framing, windowed DFT, power, mel filterbank, log, per-band
        normalization -> CNN -> softmax. ORT: model.onnx (the front end is MatMuls inside the graph). torch: the
        training-time ``LogMel`` module (``torch.stft``-free matmul front end, the same figures) and the CNN.
transcribe  float32 PCM (N, 48000) at 16 kHz -> the same log-mel front end -> conv + bidirectional GRU -> per-frame
        ArgMax -> greedy CTC decoding -> text. ORT: model.onnx (decoding in ONNX ops, a Loop of StringConcat).
        torch: the training-time Transcriber module, ArgMax, and ``_ctc.greedy_decode`` in numpy. The package is
        trained with the default recipe (``fulcrum train builtin:speech_phrases --task transcribe``), so its
        held-out WER/CER on unseen voices, the baselines and the training time are printed too.
int8    variants/int8-static/model.onnx (QDQ Conv/Gemm, calibrated on training inputs; pre-processing float) vs
        model.onnx, on the package's held-out test split: accuracy of each and how often they agree. For
        transcription variants/int8-dynamic/model.onnx (MatMuls; ONNX Runtime has no int8 GRU) by WER.

Both engines get the same thread count (``--threads``, default 1: on a shared machine one thread is the stable
figure). Each cell is the median of per-call times within a round; the best round of ``--rounds`` is reported.

    python benchmarks/bench_media.py                  # builtin:digits_images and builtin:speech_commands
    python benchmarks/bench_media.py --quick          # small subsets, few epochs (minutes, not tens of minutes)
    python benchmarks/bench_media.py --sections transcribe [--package-registry DIR]  # reuse a trained `phrases`
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.1f} / {b:.1f} / {c:.1f} on {os.cpu_count()} cores"


def _time(fns: dict[str, Callable[[], Any]], rounds: int, calls: int) -> dict[str, float]:
    """Best-round median seconds per call of each function, rounds interleaved."""
    best = {k: float("inf") for k in fns}
    for f in fns.values():
        f()  # warm-up
    for _ in range(rounds):
        for k, f in fns.items():
            ts = []
            for _ in range(calls):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            best[k] = min(best[k], float(np.median(ts)))
    return best


def _train(argv: list[str]) -> None:
    from fulcrum.cli import main

    t0 = time.perf_counter()
    rc = main(argv + ["--no-progress"])
    if rc != 0:
        sys.exit(f"training failed: {' '.join(argv)}")
    print(f"  trained in {time.perf_counter() - t0:.0f} s: fulcrum {' '.join(argv)}", flush=True)


def _optimize(reg: str, name: str) -> None:
    from fulcrum.cli import main

    if main(["optimize", name, "--variants", "int8-static", "--registry", reg]) != 0:
        sys.exit(f"fulcrum optimize {name} failed")


def _session(data: bytes, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def _report(kind: str, times: dict[str, float], batches: tuple[int, ...]) -> None:
    for b in batches:
        ort_s, torch_s = times[f"ort{b}"], times[f"torch{b}"]
        print(f"  {kind} batch {b:>2}: ORT graph {ort_s * 1e3:8.3f} ms   torch eager {torch_s * 1e3:8.3f} ms   "
              f"torch / ORT = {torch_s / ort_s:5.2f}x   ({b / ort_s:8.0f} vs {b / torch_s:8.0f} inputs/s)"
              + (f"   int8 graph {times[f'int8{b}'] * 1e3:8.3f} ms (fp32 / int8 = {ort_s / times[f'int8{b}']:4.2f}x)"
                 if f"int8{b}" in times else ""), flush=True)


def _int8_metric(kind: str, fp32: Any, int8: Any, run: Callable[[Any], np.ndarray], y: np.ndarray) -> None:
    p32, p8 = run(fp32), run(int8)
    acc32, acc8 = float((p32.argmax(1) == y).mean()), float((p8.argmax(1) == y).mean())
    agree = float((p32.argmax(1) == p8.argmax(1)).mean())
    print(f"  {kind} accuracy on {len(y)} held-out inputs: fp32 graph {acc32:.4f}, int8-static {acc8:.4f} "
          f"(change {acc8 - acc32:+.4f}); the two agree on {agree:.1%}; max |dp| {np.abs(p32 - p8).max():.3f}",
          flush=True)


# ----------------------------------------------------------------------------------------------------- image


def bench_image(reg: str, args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    from fulcrum.artifact import Registry
    from fulcrum.tasks.image._cnn import fused_copy
    from fulcrum.tasks.image._graph import batch_feeds
    from fulcrum.tasks.image._variants import load_model, recreate_prepared

    print("\nimage: builtin:digits_images (32x32 PNG digits)", flush=True)
    train = ["train", "builtin:digits_images", "--name", "digits", "--registry", reg, "--set=image_size=16"]
    if args.quick:
        train += ["--set=epochs=8"]
    _train(train)
    _optimize(reg, "digits")
    pkg = Registry(reg).load("digits")
    m = pkg.manifest
    size, ch = int(m["model"]["image_size"]), int(m["model"]["channels"])
    prep = recreate_prepared(pkg)
    test_imgs = prep.images["test"]
    y = np.asarray(prep.codec.encode(prep.splits[2][prep.target]), np.int64)
    fp32 = _session(pkg.read_bytes("model.onnx"), args.threads)
    int8 = _session(pkg.read_bytes("variants/int8-static/model.onnx"), args.threads)
    model = fused_copy(load_model(pkg)).eval()
    torch.set_num_threads(args.threads)

    def torch_probs(images: list[np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            xs = [F.interpolate(torch.from_numpy(a).permute(2, 0, 1)[None].float(), size=(size, size),
                                mode="bilinear", antialias=True, align_corners=False) for a in images]
            logits, _ = model(torch.cat(xs) / 255.0)
            return torch.softmax(logits, 1).numpy()

    def ort_probs(sess: Any, images: list[np.ndarray]) -> np.ndarray:
        return sess.run(["probabilities"], batch_feeds(images, ch))[0]

    ref, got = torch_probs(test_imgs), ort_probs(fp32, test_imgs)
    print(f"  same pre-processing: torch and ORT agree on {float((ref.argmax(1) == got.argmax(1)).mean()):.1%} of "
          f"{len(y)} test images (max |dp| {np.abs(ref - got).max():.1e}); {ch} channel(s), inputs "
          f"{test_imgs[0].shape[1]}x{test_imgs[0].shape[0]} -> {size}x{size}", flush=True)
    _int8_metric("image", fp32, int8, lambda s: ort_probs(s, test_imgs), y)
    pool = (test_imgs * (64 // max(1, len(test_imgs)) + 2))[:64]
    fns: dict[str, Callable[[], Any]] = {}
    for b in (1, 64):
        batch = pool[:b]
        fns[f"ort{b}"] = lambda batch=batch: ort_probs(fp32, batch)
        fns[f"torch{b}"] = lambda batch=batch: torch_probs(batch)
        fns[f"int8{b}"] = lambda batch=batch: ort_probs(int8, batch)
    _report("image", _time(fns, args.rounds, args.calls), (1, 64))


# ----------------------------------------------------------------------------------------------------- speech


def bench_speech(reg: str, args: argparse.Namespace) -> None:
    import shutil

    import torch
    from safetensors.torch import load

    from fulcrum.artifact import Registry
    from fulcrum.tasks.image._cnn import fused_copy
    from fulcrum.tasks.speech._cnn import KwsCNN
    from fulcrum.tasks.speech._features import FeatureParams, LogMel

    print("\nspeech: keyword spotting on builtin:speech_commands (espeak-ng, 1 s at 16 kHz)", flush=True)
    if shutil.which("espeak-ng") is None:
        print("  skipped: espeak-ng is not installed (apt-get install espeak-ng)")
        return
    data = "builtin:speech_commands"
    if args.quick:
        from fulcrum.data import load_builtin

        frame = load_builtin("speech_commands")
        frame = frame[frame["label"].isin(["yes", "no", "up", "down", "left", "right"])]
        data = str(Path(reg).parent / "words.parquet")
        frame.reset_index(drop=True).to_parquet(data)
    train = ["train", data, "--target", "label", "--name", "kws", "--registry", reg]
    if args.quick:
        train += ["--set=epochs=10"]
    _train(train)
    _optimize(reg, "kws")
    pkg = Registry(reg).load("kws")
    m = pkg.manifest
    p = FeatureParams.from_dict(m["model"]["features"])
    spec = m["model"]["spec"]
    cnn = KwsCNN(int(spec["channels"]), int(spec["classes"]), spec["widths"], spec["mean"], spec["std"],
                 int(spec["bands"]))
    weights = load(pkg.read_bytes("weights.safetensors"))
    cnn.load_state_dict({k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")})
    norm = m["model"]["normalize"]
    front = LogMel(p, norm["band_mean"], norm["band_std"]).eval()
    cnn = fused_copy(cnn.eval()).eval()
    torch.set_num_threads(args.threads)

    from fulcrum.tasks.speech import _fit as speech_fit
    from fulcrum.tasks.speech._config import SpeechConfig
    from fulcrum.tasks.speech._task import SpeechTask

    source = m["data"]["source"]
    prep = speech_fit.prepare_splits(SpeechTask().read(source), SpeechConfig.coerce({**m["config"], "progress": False}),
                                     source)
    W = np.ascontiguousarray(prep.waves["test"], np.float32)
    y = np.asarray(prep.codec.encode(prep.splits[2][prep.target]), np.int64)
    fp32 = _session(pkg.read_bytes("model.onnx"), args.threads)
    int8 = _session(pkg.read_bytes("variants/int8-static/model.onnx"), args.threads)

    def torch_probs(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits, _ = cnn(front(torch.from_numpy(x)))
            return torch.softmax(logits, 1).numpy()

    def ort_probs(sess: Any, x: np.ndarray) -> np.ndarray:
        return sess.run(["probabilities"], {"audio": x})[0]

    ref, got = torch_probs(W), ort_probs(fp32, W)
    print(f"  same pre-processing: torch and ORT agree on {float((ref.argmax(1) == got.argmax(1)).mean()):.1%} of "
          f"{len(y)} test clips (max |dp| {np.abs(ref - got).max():.1e}); {p.frames} frames x {p.n_mels} mel bands",
          flush=True)
    _int8_metric("speech", fp32, int8, lambda s: ort_probs(s, W), y)
    _report("speech", _time(_audio_fns(W, ort_probs, torch_probs, fp32, int8), args.rounds, args.calls), (1, 64))


def _audio_fns(W: np.ndarray, ort_fn: Callable[[Any, np.ndarray], Any], torch_fn: Callable[[np.ndarray], Any],
               fp32: Any, int8: Any) -> dict[str, Callable[[], Any]]:
    """The timed calls at batch 1 and 64 (clips repeated to fill 64): the fp32 graph, torch eager, the int8 graph."""
    pool = np.concatenate([W] * (64 // max(1, len(W)) + 1))[:64]
    fns: dict[str, Callable[[], Any]] = {}
    for b in (1, 64):
        batch = np.ascontiguousarray(pool[:b])
        fns[f"ort{b}"] = lambda batch=batch: ort_fn(fp32, batch)
        fns[f"torch{b}"] = lambda batch=batch: torch_fn(batch)
        fns[f"int8{b}"] = lambda batch=batch: ort_fn(int8, batch)
    return fns


# ----------------------------------------------------------------------------------------------------- transcribe


def bench_transcribe(reg: str, args: argparse.Namespace) -> None:
    import shutil

    import torch
    from safetensors.torch import load

    from fulcrum.artifact import Registry
    from fulcrum.cli import main as cli
    from fulcrum.tasks.speech._ctc import error_rates, greedy_decode
    from fulcrum.tasks.speech._features import FeatureParams
    from fulcrum.tasks.speech._transcribe import TranscribeConfig, TranscribeTask, _net, prepare_transcripts

    print("\ntranscribe: short phrases on builtin:speech_phrases (espeak-ng, 3 s at 16 kHz), test voices unseen",
          flush=True)
    if shutil.which("espeak-ng") is None:
        print("  skipped: espeak-ng is not installed (apt-get install espeak-ng)")
        return
    if args.package_registry:
        reg = args.package_registry
    else:
        train = ["train", "builtin:speech_phrases", "--task", "transcribe", "--name", "phrases", "--registry", reg]
        if args.quick:
            train += ["--set=steps=300"]
        _train(train)
    if "int8-dynamic" not in (Registry(reg).load("phrases").manifest.get("variants") or {}):
        if cli(["optimize", "phrases", "--variants", "int8-dynamic", "--registry", reg]) != 0:
            sys.exit("fulcrum optimize phrases failed")
    pkg = Registry(reg).load("phrases")
    m = pkg.manifest
    met, base = m["metrics"], m["metrics"]["baseline"]
    print(f"  test (unseen voices, {met['test']['n']} clips; {m['data']['split']}): WER {met['test']['wer']:.4f}, "
          f"CER {met['test']['cer']:.4f}, exact {met['test']['exact_match']:.3f}; baselines: most common transcript "
          f"WER {base['most_common']['test_wer']:.4f}, 1-NN on mean/std log-mel WER "
          f"{base['nearest_neighbour']['test_wer']:.4f}; validation WER {met['validation']['wer']:.4f}; "
          f"training {met['timing_s']['train']:.0f} s ({m['model']['epochs']} epochs, best {m['model']['best_epoch']})",
          flush=True)
    cfg = TranscribeConfig.coerce({**m["config"], "progress": False})
    p = FeatureParams.from_dict(m["model"]["features"])
    vocab = m["model"]["vocabulary"]
    norm = m["model"]["normalize"]
    net = _net(p, cfg, len(vocab), norm["band_mean"], norm["band_std"])
    weights = load(pkg.read_bytes("weights.safetensors"))
    net.acoustic.load_state_dict({k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")})
    net.eval()
    torch.set_num_threads(args.threads)
    source = m["data"]["source"]
    prep = prepare_transcripts(TranscribeTask().read(source), cfg, source)
    W = np.ascontiguousarray(prep.waves["test"], np.float32)
    refs = prep.splits[2][prep.target].tolist()
    fp32 = _session(pkg.read_bytes("model.onnx"), args.threads)
    int8 = _session(pkg.read_bytes("variants/int8-dynamic/model.onnx"), args.threads)

    def torch_text(x: np.ndarray) -> list[str]:
        with torch.inference_mode():
            return greedy_decode(net(torch.from_numpy(x)).argmax(2).numpy(), vocab)

    def ort_text(sess: Any, x: np.ndarray) -> list[str]:
        return [str(t) for t in sess.run(["text"], {"audio": x})[0].tolist()]

    def texts(f: Callable[[np.ndarray], list[str]]) -> list[str]:
        return [t for s in range(0, len(W), 64) for t in f(W[s: s + 64])]

    ref, got, got8 = texts(torch_text), texts(lambda x: ort_text(fp32, x)), texts(lambda x: ort_text(int8, x))
    e32, e8 = error_rates(refs, got), error_rates(refs, got8)
    same = np.mean([a == b for a, b in zip(ref, got)])
    print(f"  same pre-processing: torch and ORT write the same text for {same:.1%} of {len(W)} test clips", flush=True)
    print(f"  WER on {len(W)} held-out clips: fp32 graph {e32['wer']:.4f} (CER {e32['cer']:.4f}), int8-dynamic "
          f"{e8['wer']:.4f} (CER {e8['cer']:.4f}), change {e8['wer'] - e32['wer']:+.4f}; same text on "
          f"{np.mean([a == b for a, b in zip(got, got8)]):.1%}", flush=True)
    _report("transcribe", _time(_audio_fns(W, ort_text, torch_text, fp32, int8), args.rounds, args.calls), (1, 64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="image,speech")
    ap.add_argument("--quick", action="store_true", help="small subsets and few epochs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20, help="calls per round and cell")
    ap.add_argument("--package-registry", default=None,
                    help="transcribe: a registry that already holds the package `phrases` (no training)")
    args = ap.parse_args()
    print(f"bench_media: {_load()}; threads {args.threads}; decoding excluded on both sides", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("FULCRUM_HOME", tmp)
        reg = str(Path(tmp) / "registry")
        sections = args.sections.split(",")
        if "image" in sections:
            bench_image(reg, args)
        if "speech" in sections:
            bench_speech(reg, args)
        if "transcribe" in sections:
            bench_transcribe(reg, args)
    print(f"\n{_load()}")


if __name__ == "__main__":
    main()
