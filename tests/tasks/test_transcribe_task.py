"""The transcription task end to end on small espeak-ng data: a table of WAV paths and transcripts -> `fulcrum
train` (detected as transcription) -> a package whose one graph goes from 16 kHz PCM to text (greedy CTC decoding
in ONNX ops) -> `fulcrum predict` / `fulcrum evaluate` (WER) / a real server (friendly route and v2 BYTES) /
`fulcrum optimize` (dynamic int8 measured by WER); bad tables refused with one clear line and nothing written.

The model here trains for 2 epochs on 24 clips, so its transcripts are poor: these tests check the plumbing and
the metric, not the quality (the README gives the measured WER on unseen voices of builtin:speech_phrases)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from speech_fixtures import needs_espeak, wav
from test_every_task import Server, cli

import fulcrum
from fulcrum.artifact import Registry
from fulcrum.cli import main
from fulcrum.tasks import detect_task, get_task

pytestmark = needs_espeak
FAST = ["--set=epochs=2", "--set=width=4", "--set=hidden=16", "--set=layers=1", "--set=seconds=1.5",
        "--no-progress"]


@pytest.fixture(scope="module", autouse=True)
def speech_cache(tmp_path_factory):
    """espeak-ng clips cached beside pytest's numbered temp folders (as in test_speech_task.py)."""
    before = os.environ.get("FULCRUM_CACHE_DIR")
    os.environ["FULCRUM_CACHE_DIR"] = str(tmp_path_factory.getbasetemp().parent / "fulcrum-speech-cache")
    yield
    if before is None:
        os.environ.pop("FULCRUM_CACHE_DIR", None)
    else:
        os.environ["FULCRUM_CACHE_DIR"] = before


def phrases() -> pd.DataFrame:
    from fulcrum.tasks.speech._phrases import synthesize_phrases

    return synthesize_phrases(("stop", "go back", "turn left"), ("en-us", "en-gb", "en-gb-scotland"), ("m1", "f1"),
                              numbers=1, seed=0, seconds=1.5)


def write_table(root: Path, frame: pd.DataFrame) -> Path:
    """root/clips/<n>.wav and root/table.csv (path, text, voice): a table of paths inside the dataset root."""
    (root / "clips").mkdir(parents=True, exist_ok=True)
    paths = []
    for n, b64 in enumerate(frame["audio"]):
        (root / "clips" / f"{n}.wav").write_bytes(base64.b64decode(b64))
        paths.append(f"clips/{n}.wav")
    table = pd.DataFrame({"path": paths, "text": frame["text"], "voice": frame["voice"]})
    table.to_csv(root / "table.csv", index=False)
    return root / "table.csv"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("transcribe")
    frame = phrases()
    table = write_table(root / "data", frame)
    reg = root / "registry"
    assert main(["train", str(table), "--target", "text", "--name", "tr", "--registry", str(reg), *FAST]) == 0
    return frame, table, Registry(reg)


# ----------------------------------------------------------------------------- metric and decoding


def _levenshtein(a, b) -> int:
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]


def test_wer_and_cer_are_edit_distances_over_reference_length():
    from fulcrum.tasks.speech._ctc import error_rates

    refs = ["turn left", "go back", "three seven two", "stop"]
    hyps = ["turn right", "go back now", "three two", "Stop!"]  # 1 substitution, 1 insertion, 1 deletion, 0
    r = error_rates(refs, hyps)
    assert r["wer"] == pytest.approx(3 / 8)
    assert r["reference_words"] == 8 and r["exact_match"] == pytest.approx(1 / 4)  # "Stop!" normalizes to "stop"
    chars = sum(_levenshtein(a, b) for a, b in zip(refs, ["turn right", "go back now", "three two", "stop"]))
    assert r["cer"] == pytest.approx(chars / sum(len(t) for t in refs))
    assert error_rates(["a b"], ["a b"])["wer"] == 0.0


def test_graph_decoder_matches_greedy_ctc_decoding():
    """The in-graph collapse (shifted-ArgMax Equal, Gather of characters, Loop of StringConcat) writes exactly what
    the numpy greedy decoder writes, spaces collapsed and stripped, on random and on edge-case frame ids."""
    from onnx import TensorProto, helper

    from fulcrum.tasks.speech._ctc import decoder_nodes, greedy_decode

    vocab = ["", " ", "a", "b", "e", "t"]
    nodes, inits = decoder_nodes(vocab, "ids", "text")
    graph = helper.make_graph(nodes, "dec", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", "T"])],
                              [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    ids = np.concatenate([rng.integers(0, len(vocab), (200, 17)),
                          np.array([[0] * 17, [1] * 17, [1, 2, 2, 0, 2, 1, 1, 3, 0, 4, 1] + [0] * 6,
                                    [5, 5, 0, 5, 1, 0, 1, 2, 1, 1, 1, 1, 3, 3, 3, 0, 1]])])
    got = sess.run(["text"], {"ids": ids})[0].tolist()
    want = greedy_decode(ids, vocab)
    assert got == want
    assert want[-4:] == ["", "", "aa be", "tt a b"]


# ----------------------------------------------------------------------------- detection


def test_detection_audio_with_transcripts_is_transcription_and_single_words_stay_keyword_spotting():
    frame = phrases()
    assert detect_task(frame, "text").name == "transcribe"
    assert detect_task(frame, None).name == "transcribe"
    kws = frame.assign(label=frame["text"].str.split().str[0]).drop(columns=["text"])
    assert detect_task(kws, "label").name == "speech"  # one word per clip: keyword spotting
    renamed = frame.rename(columns={"text": "said"})  # not named like a transcript, but several words per clip
    assert detect_task(renamed, "said").name == "transcribe"


# ----------------------------------------------------------------------------- end to end


def test_table_of_paths_trains_one_graph_from_pcm_to_text(trained):
    frame, table, reg = trained
    m = reg.load("tr").manifest
    assert m["task"]["workload"] == "transcribe" and m["task"]["kind"] == "transcription"
    assert m["outputs"][0] == {"name": "text", "kind": "text",
                               "description": "the transcript (greedy CTC decoding, lower case)"}
    ood = m["outputs"][1]
    assert ood["name"] == "ood_score" and ood["kind"] == "ood_score" and ood["description"]
    assert 0 < ood["thresholds"]["p95"] <= ood["thresholds"]["p99"] < 1  # CTC confidence scores of training clips
    assert m["metrics"]["primary"]["name"] == "wer" and 0 <= m["metrics"]["primary"]["value"]
    assert m["metrics"]["test"]["reference_words"] > 0 and m["metrics"]["baseline"]["most_common"]["test_wer"] >= 0
    assert m["data"]["split"].startswith("by 'voice'")  # test voices never heard in training
    vocab = m["model"]["vocabulary"]
    assert vocab[0] == "" and " " in vocab and set("stopgbackturnlf") <= set(vocab)
    graph = onnx.load_from_string(reg.load("tr").read_bytes("model.onnx"))
    assert [i.name for i in graph.graph.input] == ["audio"]
    assert [o.name for o in graph.graph.output] == ["text", "ood_score"]
    assert {"GRU", "Loop", "ArgMax"} <= {n.op_type for n in graph.graph.node}
    # plain onnxruntime: PCM in, strings out
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    pcm = np.zeros((2, m["model"]["features"]["samples"]), np.float32)
    out, ood = sess.run(["text", "ood_score"], {"audio": pcm})
    assert out.shape == (2,) and all(isinstance(t, str) for t in out)
    assert ood.tolist() == [1.0, 1.0]  # silence


def test_predict_cli_python_and_evaluate_wer(trained, tmp_path, capsys):
    frame, table, reg = trained
    rows = frame[["audio"]].head(6)
    py = fulcrum.load("tr", registry=reg).predict(rows)
    assert list(py.columns) == ["prediction", "ood_score"] and all(isinstance(t, str) for t in py["prediction"])
    one = fulcrum.load("tr", registry=reg).predict_one({"audio": rows["audio"][0]})
    assert one == {"prediction": py["prediction"][0], "ood_score": pytest.approx(py["ood_score"][0], abs=1e-6)}
    inputs = tmp_path / "inputs.csv"
    rows.to_csv(inputs, index=False)
    out = tmp_path / "pred.csv"
    rc, _, err = cli(capsys, "predict", "tr", inputs, "-o", out, "--no-progress", "--registry", reg.root)
    assert rc == 0, err
    got = pd.read_csv(out, keep_default_na=False)
    assert got["prediction"].tolist() == py["prediction"].tolist()
    assert got["ood_score"].to_numpy() == pytest.approx(py["ood_score"].to_numpy(), abs=1e-5)

    labelled = tmp_path / "labelled.csv"
    frame[["audio", "text"]].to_csv(labelled, index=False)
    rc, text, err = cli(capsys, "evaluate", "tr", labelled, "--json", "--registry", reg.root)
    assert rc == 0, err
    metrics = json.loads(text)
    from fulcrum.tasks.speech._ctc import error_rates

    hyps = fulcrum.load("tr", registry=reg).predict(frame[["audio"]])["prediction"].tolist()
    assert metrics["wer"] == pytest.approx(error_rates(frame["text"].tolist(), hyps)["wer"])
    assert metrics["n"] == len(frame)
    rc, text, err = cli(capsys, "evaluate", "tr", labelled, "--registry", reg.root)
    assert rc == 0, err
    assert f"wer                {metrics['wer']:.4f}" in text and "cer" in text


def test_server_returns_text_on_the_friendly_route_and_v2(trained):
    frame, _, reg = trained
    clips = frame["audio"].head(4).tolist()
    want = fulcrum.load("tr", registry=reg).predict(pd.DataFrame({"audio": clips}))["prediction"].tolist()
    long = base64.b64encode(wav(np.zeros(16000 * 2, np.float32))).decode()  # 2 s: over the 1.5 s window
    with Server("tr", reg) as c:
        r = c.post("/v1/models/tr/predict", json={"audio": clips})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == want
        r = c.post("/v1/models/tr/predict", json={"records": [{"audio": a} for a in clips]})
        assert r.status_code == 200 and r.json()["predictions"] == want
        r = c.post("/v2/models/tr/infer", json={"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [4],
                                                            "data": clips}]})
        assert r.status_code == 200, r.text
        out, *rest = r.json()["outputs"]
        assert [o["name"] for o in rest] == ["ood_score"]  # the graph's out-of-scope score
        assert out["name"] == "text" and out["datatype"] == "BYTES" and out["shape"] == [4] and out["data"] == want
        meta = c.get("/v2/models/tr").json()
        assert meta["outputs"][0] == {"name": "text", "datatype": "BYTES", "shape": [-1]}
        r = c.post("/v1/models/tr/predict", json={"audio": [clips[0], long]})
        assert r.status_code == 422 and "row 1" in r.text and "1.5 s" in r.text


def test_optimize_measures_fp32_and_dynamic_int8_by_wer(trained):
    from fulcrum.optimize import BenchSettings, OptimizeOptions, optimize_package

    _, table, reg = trained
    fast = BenchSettings(warmup=1, rounds=2, round_s=0.0, min_calls_b1=3, min_calls_big=1, batch=8)
    report = optimize_package("tr", registry=reg, variants=["onnx-fp32", "int8-dynamic"],
                              options=OptimizeOptions(bench=fast))
    assert report.measured and sorted(report.built) == ["int8-dynamic", "onnx-fp32"], report.skipped
    variants = reg.load("tr").manifest["variants"]
    for vid in ("base", "onnx-fp32", "int8-dynamic"):
        assert 0 <= variants[vid]["metrics"]["wer"], variants[vid]
    assert variants["onnx-fp32"]["metric"]["name"] == "wer"
    got = fulcrum.load("tr", registry=reg, variant="int8-dynamic").predict(
        pd.DataFrame({"audio": trained[0]["audio"].head(3)}))
    assert len(got) == 3 and all(isinstance(t, str) for t in got["prediction"])


# ----------------------------------------------------------------------------- bad tables


def _bad(capsys, tmp_path, table: Path, *extra) -> str:
    reg = tmp_path / "badreg"
    rc, out, err = cli(capsys, "train", table, "--target", "text", "--task", "transcribe", "--name", "bad",
                       "--registry", reg, *FAST, *extra)
    assert rc != 0
    assert not (reg.exists() and any(reg.rglob("manifest.json")))  # nothing written
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err  # one clear line
    return lines[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("badsrc")
    write_table(root, phrases().head(9))
    return root


def test_empty_transcript_column_is_refused(small, tmp_path, capsys):
    t = pd.read_csv(small / "table.csv")
    t["text"] = ""
    t.to_csv(small / "empty.csv", index=False)
    assert "transcript column 'text' is empty" in _bad(capsys, tmp_path, small / "empty.csv")


def test_zero_length_clip_is_refused_naming_it(small, tmp_path, capsys):
    (small / "clips" / "zero.wav").write_bytes(wav(np.zeros(0, np.float32)))
    t = pd.read_csv(small / "table.csv")
    t.loc[2, "path"] = "clips/zero.wav"
    t.to_csv(small / "zero.csv", index=False)
    line = _bad(capsys, tmp_path, small / "zero.csv")
    assert "zero.wav" in line and "zero-length" in line


def test_path_outside_the_dataset_root_is_refused(small, tmp_path, capsys):
    outside = tmp_path / "outside.wav"
    outside.write_bytes((small / "clips" / "0.wav").read_bytes())
    (small / "clips" / "link.wav").symlink_to(outside)
    for i, bad in enumerate(("../../outside.wav", "clips/link.wav")):
        t = pd.read_csv(small / "table.csv")
        t.loc[1, "path"] = bad
        t.to_csv(small / f"out{i}.csv", index=False)
        line = _bad(capsys, tmp_path, small / f"out{i}.csv")
        assert "outside the dataset root" in line and repr(bad) in line


def test_clip_longer_than_the_window_is_refused(small, tmp_path, capsys):
    (small / "clips" / "long.wav").write_bytes(wav(0.1 * np.ones(16000 * 2, np.float32)))
    t = pd.read_csv(small / "table.csv")
    t.loc[0, "path"] = "clips/long.wav"
    t.to_csv(small / "long.csv", index=False)
    line = _bad(capsys, tmp_path, small / "long.csv")
    assert "2.00 s long, longer than the 1.5 s window" in line and "seconds=" in line


def test_time_limit_stops_training_after_the_epoch_that_passes_it(small):
    from fulcrum.errors import ConfigError
    from fulcrum.tasks.speech import TranscribeConfig

    with pytest.raises(ConfigError, match="time_limit"):
        TranscribeConfig(time_limit=0)
    frame = pd.read_csv(small / "table.csv")
    trained = get_task("transcribe").fit(frame, {"epochs": 5, "width": 4, "hidden": 8, "layers": 1, "seconds": 1.5,
                                                 "time_limit": 1e-3, "audio_root": str(small), "progress": False})
    m = trained.manifest["model"]
    assert m["epochs"] == 1 and m["stopped_early"]


# ----------------------------------------------------------------------------- the default recipe learns


def tone_words(per_voice: int = 40, voices: int = 5, seed: int = 0) -> pd.DataFrame:
    """A tiny stand-in for speech that a CTC model can learn in a few hundred steps: letter a/b/c/d = an 80 ms tone
    at its own pitch, a clip = 1-3 letters at a random offset in 0.5 s with gaps between them (repeats are
    separable), each "voice" detuned by its own 4% step, white noise under it."""
    import io

    import soundfile as sf

    freqs = {"a": 400.0, "b": 700.0, "c": 1100.0, "d": 1600.0}
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(voices):
        detune = 1.0 + 0.04 * (v - voices // 2)
        for _ in range(per_voice):
            word = "".join(rng.choice(list(freqs), int(rng.integers(1, 4))))
            x = np.zeros(8000, np.float32)
            t = int(rng.integers(0, 1600))
            for ch in word:
                n = int(rng.integers(1100, 1500))
                x[t: t + n] = 0.3 * np.sin(2 * np.pi * freqs[ch] * detune * np.arange(n) / 16000) * np.hanning(n)
                t += n + int(rng.integers(500, 900))
            x += rng.normal(0, 0.01, len(x)).astype(np.float32)
            buf = io.BytesIO()
            sf.write(buf, x, 16000, format="WAV", subtype="PCM_16")
            rows.append({"audio": base64.b64encode(buf.getvalue()).decode(), "text": word, "voice": f"v{v}"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """`fulcrum train` on a table of tone-word clips (paths) with the default recipe, the model made smaller and the
    run short (250 steps): a transcriber that has learned what it hears."""
    root = tmp_path_factory.mktemp("tones")
    table = write_table(root / "data", tone_words())
    reg = root / "registry"
    assert main(["train", str(table), "--target", "text", "--name", "tones", "--registry", str(reg), "--no-progress",
                 "--set=seconds=0.5", "--set=width=16", "--set=hidden=48", "--set=layers=1", "--set=steps=250"]) == 0
    return Registry(reg)


def test_default_recipe_leaves_the_blank_plateau_and_beats_the_baseline_on_an_unseen_voice(tones):
    """The default optimization recipe (AdamW, per-step warmup + cosine, gradient clipping, per-clip band means
    removed, stride-4 conv + GRU, masks) with only the model made smaller and the run short (250 steps): CTC's
    first steps only output blanks (WER 1.0, CER 1.0); the default recipe gets past that and writes the held-out
    voice's letters (measured: WER 0.03, baseline 0.63)."""
    met = tones.load("tones").manifest["metrics"]
    assert met["test"]["n"] == 40  # one whole voice held out
    assert met["test"]["cer"] < 0.15 and met["test"]["wer"] < 0.25
    assert met["test"]["wer"] < met["baseline"]["test_wer"] / 2


def test_silence_noise_and_other_sounds_are_flagged_out_of_scope_per_request_and_its_own_are_not(tones, capsys):
    """Through a real server, the learned tone-word transcriber gets clips like its training clips (new words at
    the held-out voice's pitch), silence, steady noise and spoken phrases (sound it was not trained on): the friendly
    route flags silence and noise (score 1: the log-mel level gates) and most spoken phrases (its CTC confidence on
    them is low), not its own kind of clip (measured: held-out tone words 0.03-0.17, p99 threshold 0.28, spoken
    phrases 0.09-1); v2 returns the same scores, the graph alone in onnxruntime computes them from the clips' PCM as
    the predictor does, and `fulcrum monitor` counts the flagged rows from the server's window."""
    from fulcrum.tasks.speech._data import decode_audio, fix_length

    reg = tones
    own = tone_words(per_voice=12, voices=5, seed=5)
    own = own[own["voice"] == "v4"]["audio"].tolist()  # new words at a pitch step it was trained on (seed 5)
    spoken = [base64.b64encode(wav(fix_length(decode_audio(a), 8000))).decode()  # its loudest 0.5 s: the window
              for a in phrases()["audio"].tolist()[:12]]
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    odd = [np.zeros(8000), np.zeros(3000), 1e-4 * rng.standard_normal(8000),  # silence, near-silence
           0.1 * rng.standard_normal(8000), 0.4 * rng.uniform(-1, 1, 6000),  # white noise
           0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 50 * t) + 0.05 * rng.standard_normal(8000)]
    odd_b64 = [base64.b64encode(wav(x.astype(np.float32))).decode() for x in odd]
    sent = own + odd_b64 + spoken
    with Server("tones", reg) as c:
        flags, scores = [], []
        for batch in (own, odd_b64, spoken):
            r = c.post("/v1/models/tones/predict", json={"audio": batch})
            assert r.status_code == 200, r.text
            body = r.json()
            assert len(body["predictions"]) == len(body["ood"]) == len(body["ood_scores"]) == len(batch)
            flags, scores = flags + body["ood"], scores + body["ood_scores"]
        r = c.post("/v2/models/tones/infer", json={"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [2],
                                                               "data": [own[0], odd_b64[3]]}]})
        assert r.status_code == 200, r.text
        v2 = {o["name"]: o["data"] for o in r.json()["outputs"]}
    n, k = len(own), len(odd)
    assert flags[n: n + k] == [True] * k and scores[n: n + k] == [1.0] * k, scores[n: n + k]
    assert sum(flags[:n]) <= 0.1 * n and max(scores[:n]) < 0.5, scores[:n]
    assert sum(flags[n + k:]) >= 0.5 * len(spoken), scores[n + k:]
    assert np.mean(scores[n + k:]) > 2 * np.mean(scores[:n])
    assert v2["ood_score"] == pytest.approx([scores[0], 1.0], abs=1e-4)

    # the graph alone (onnxruntime, PCM in) gives the predictor's scores, and the server's
    pkg = reg.load("tones")
    samples = pkg.manifest["model"]["features"]["samples"]
    pcm = np.stack([fix_length(decode_audio(a), samples) for a in sent]).astype(np.float32)
    sess = ort.InferenceSession(pkg.read_bytes("model.onnx"), providers=["CPUExecutionProvider"])
    graph = sess.run(["ood_score"], {"audio": pcm})[0]
    pred = fulcrum.load("tones", registry=reg).predict(pd.DataFrame({"audio": sent}))["ood_score"]
    assert graph == pytest.approx(pred.to_numpy(), abs=1e-5)
    assert graph == pytest.approx(np.asarray(scores), abs=1e-4)

    # `fulcrum monitor` reads the server's window: the out-of-scope clips counted, from the graph's scores
    rc, out, err = cli(capsys, "monitor", "tones", "--json", "--registry", reg.root)
    assert rc == 0, err
    snap = json.loads(out)["snapshot"]
    assert snap["ood"]["source"] == "graph" and snap["counts"]["rows_observed"] == len(sent) + 2
    assert snap["counts"]["ood_observed"] == sum(flags) + 1
    assert snap["ood"]["threshold"] == pytest.approx(pkg.manifest["outputs"][1]["thresholds"]["p99"])
    rc, out, err = cli(capsys, "monitor", "tones", "--registry", reg.root)
    assert rc == 0, err
    assert f"out-of-distribution: {(sum(flags) + 1) / (len(sent) + 2):.1%} of the window" in out


def test_fulcrum_monitor_data_scores_a_file_of_clips_with_the_graph(tones, tmp_path, capsys):
    """`fulcrum monitor MODEL --data FILE` runs the package graph on the file's clips: the silent and noisy ones are
    counted out of scope by the graph's score and threshold, as the server counts them."""
    own = tone_words(per_voice=8, voices=5, seed=6)
    own = own[own["voice"] == "v0"]["audio"].tolist()
    rng = np.random.default_rng(1)
    odd = [np.zeros(8000), 0.1 * rng.standard_normal(8000), 0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)]
    clips = own + [base64.b64encode(wav(x.astype(np.float32))).decode() for x in odd]
    path = tmp_path / "clips.csv"
    pd.DataFrame({"audio": clips}).to_csv(path, index=False)
    rc, out, err = cli(capsys, "monitor", "tones", "--data", path, "--json", "--registry", tones.root)
    assert rc == 0, err
    snap = json.loads(out)["snapshot"]
    scores = fulcrum.load("tones", registry=tones).predict(pd.DataFrame({"audio": clips}))["ood_score"].to_numpy()
    threshold = tones.load("tones").manifest["outputs"][1]["thresholds"]["p99"]
    assert snap["ood"]["source"] == "graph" and snap["ood"]["threshold"] == pytest.approx(threshold)
    assert snap["counts"]["ood_observed"] == int((scores >= threshold).sum()) >= len(odd)
    assert snap["ood"]["max_score"] == pytest.approx(1.0)


def test_the_graphs_ood_score_is_the_models_ctc_confidence_gated_by_the_numpy_levels(tones):
    """The package graph's ``ood_score`` equals its definition computed outside it: 1 - the CTC confidence of the
    torch model (rebuilt from the package's weights) on the clips, 1 where the numpy log-mel levels (_fit.clip_levels
    at the profile's silence / steady levels) call a clip silent or steady."""
    from safetensors.torch import load

    from fulcrum.tasks.speech._data import decode_audio, fix_length
    from fulcrum.tasks.speech._features import FeatureParams
    from fulcrum.tasks.speech._transcribe import TranscribeConfig, _net, _predict_logits, reference_ood

    pkg = tones.load("tones")
    m = pkg.manifest
    p = FeatureParams.from_dict(m["model"]["features"])
    norm = m["model"]["normalize"]
    net = _net(p, TranscribeConfig.coerce({**m["config"], "progress": False}), len(m["model"]["vocabulary"]),
               norm["band_mean"], norm["band_std"])
    weights = load(pkg.read_bytes("weights.safetensors"))
    net.acoustic.load_state_dict({k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")})
    rng = np.random.default_rng(2)
    own = [fix_length(decode_audio(a), p.samples) for a in tone_words(per_voice=2, voices=5, seed=7)["audio"]]
    spoken = [fix_length(decode_audio(a), p.samples) for a in phrases()["audio"].tolist()[:6]]
    odd = [np.zeros(p.samples), 0.05 * rng.standard_normal(p.samples),
           0.2 * np.sin(2 * np.pi * 300 * np.arange(p.samples) / 16000)]
    W = np.stack(own + spoken + odd).astype(np.float32)
    levels = pkg.read_json("profile.json")["ood"]
    want = reference_ood(_predict_logits(net, W), W, p, levels["silence_level"], levels["steady_level"])
    sess = ort.InferenceSession(pkg.read_bytes("model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["ood_score"], {"audio": W})[0]
    assert got == pytest.approx(want, abs=1e-4)
    assert list(want[-3:]) == [1.0, 1.0, 1.0] and want[: len(own)].max() < 0.5
