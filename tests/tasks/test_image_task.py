"""The image task end to end on small generated data: `fulcrum train FOLDER` (detected as image) -> a package
whose one graph takes raw pixels of any size; parity with the torch model; bad data refused with one clear
line and nothing written; static int8 through `fulcrum optimize`."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from image_fixtures import bomb_png, digit_images, encode, train_folder, write_folder

import fulcrum
from fulcrum.artifact import Registry
from fulcrum.cli import main
from fulcrum.errors import DataError, SchemaError
from fulcrum.tasks import detect_task, get_task
from fulcrum.tasks.image._data import decode_image

FAST = ["--set=epochs=25", "--set=image_size=16", "--no-progress"]


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder, reg = train_folder(tmp_path_factory.mktemp("img"), "digits3", *FAST)
    return folder, Registry(reg)


def test_folder_is_detected_trained_and_packaged_as_one_graph(trained, capsys):
    folder, reg = trained
    frame = get_task("tabular").read(str(folder))  # any task's read hands the folder to the image task
    assert {"image", "label", "path"} <= set(frame.columns) and len(frame) == 90
    assert detect_task(frame, "label").name == "image"
    pkg = reg.load("digits3")
    m = pkg.manifest
    assert m["task"]["workload"] == "image" and m["task"]["labels"] == ["0", "1", "7"]
    assert m["model"]["mode"] == "L" and m["model"]["image_size"] == 16
    assert m["onnx"]["parity_max_abs_diff"] < 1e-4  # the graph vs the torch model on the test split
    assert m["metrics"]["primary"]["value"] >= 0.8
    # plain onnxruntime, raw pixels of two different sizes in one batch = each alone
    sess = ort.InferenceSession(pkg.read_bytes("model.onnx"), providers=["CPUExecutionProvider"])
    (a, _), (b, _) = digit_images(1, (7,))[0], digit_images(1, (1,))[0]
    big = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(b).resize((40, 31)))
    one_a = sess.run(None, {"image": a[None, :, :, None], "image_size": np.array([[24, 24]])})
    one_b = sess.run(None, {"image": big[None, :, :, None], "image_size": np.array([[31, 40]])})
    canvas = np.zeros((2, 31, 40, 1), np.uint8)
    canvas[0, :24, :24, 0], canvas[1, :, :, 0] = a, big
    both = sess.run(None, {"image": canvas, "image_size": np.array([[24, 24], [31, 40]])})
    assert list(both[0]) == [one_a[0][0], one_b[0][0]]
    assert [str(x) for x in both[0]] == [m["task"]["labels"][i] for i in both[1].argmax(1)]  # the most probable class
    np.testing.assert_allclose(both[1], np.concatenate([one_a[1], one_b[1]]), atol=1e-6)


def test_predict_python_and_cli_agree_on_a_table_of_images(trained, tmp_path, capsys):
    folder, reg = trained
    frame = get_task("image").read(str(folder)).head(9)
    py = fulcrum.load("digits3", registry=reg).predict(frame[["image", "path"]])
    assert (py["prediction"].astype(str) == frame["label"]).mean() >= 0.8
    frame[["path", "image"]].to_csv(tmp_path / "in.csv", index=False)
    rc, _, err = cli(capsys, "predict", "digits3", tmp_path / "in.csv", "-o", tmp_path / "out.csv", "--keep", "path",
                     "--no-progress", "--registry", reg.root)
    assert rc == 0, err
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["prediction"].astype(str).tolist() == py["prediction"].astype(str).tolist()


def test_a_table_of_paths_trains_and_a_path_out_of_the_root_is_refused(tmp_path, capsys):
    folder = write_folder(tmp_path / "data", per_class=12)
    rows = [{"file": str(p.relative_to(folder)), "label": p.parent.name} for p in sorted(folder.rglob("*.*"))]
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    reg = tmp_path / "reg"
    rc, out, err = cli(capsys, "train", folder / "labels.csv", "--target", "label", "--name", "paths", "--registry", reg,
                       "--set=epochs=2", "--set=image_size=16", "--no-progress")
    assert rc == 0, err and "(image task)" in out
    (tmp_path / "outside.png").write_bytes(encode(np.zeros((8, 8), np.uint8)))
    bad = pd.DataFrame(rows + [{"file": "../outside.png", "label": "0"}])
    bad.to_csv(folder / "bad.csv", index=False)
    rc, _, err = cli(capsys, "train", folder / "bad.csv", "--target", "label", "--name", "escape", "--registry", reg,
                     "--no-progress")
    assert rc != 0 and "outside the dataset root" in err and "'../outside.png'" in err
    assert not (reg / "escape").exists()


@pytest.mark.parametrize("case", ["corrupt", "not_an_image", "truncated", "bomb", "symlink_out", "one_class"])
def test_bad_folders_give_one_clear_line_and_write_nothing(case, tmp_path, capsys):
    folder = write_folder(tmp_path / "data", per_class=6)
    target = folder / "1"
    if case == "corrupt":
        (target / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
        expect = "'1/bad.png' cannot be decoded"
    elif case == "not_an_image":
        (target / "notes.txt").write_text("hello")
        expect = "'1/notes.txt' is not an image file"
    elif case == "truncated":
        data = encode(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
        (target / "cut.png").write_bytes(data[: len(data) // 2])
        expect = "'1/cut.png' cannot be decoded"
    elif case == "bomb":
        (target / "bomb.png").write_bytes(bomb_png())
        expect = "(a decompression bomb), far over this model's limit"
    elif case == "symlink_out":
        (tmp_path / "elsewhere.png").write_bytes(encode(np.zeros((8, 8), np.uint8)))
        os.symlink(tmp_path / "elsewhere.png", target / "link.png")
        expect = "points outside the dataset root"
    else:
        for d in folder.iterdir():
            if d.name != "0":
                for f in d.iterdir():
                    f.unlink()
                d.rmdir()
        expect = "class"
    reg = tmp_path / "reg"
    rc, out, err = cli(capsys, "train", folder, "--name", "bad", "--registry", reg, "--no-progress")
    assert rc != 0 and expect in err, err
    assert not (reg / "bad").exists()


def test_decoding_limits_and_inputs():
    px = digit_images(1, (3,))[0][0]
    png = encode(px)
    assert decode_image(png, "L").shape == (24, 24, 1)
    assert decode_image(base64.b64encode(png).decode(), "RGB").shape == (24, 24, 3)
    assert decode_image("data:image/png;base64," + base64.b64encode(png).decode(), "L").shape == (24, 24, 1)
    assert decode_image(px, "L").shape == (24, 24, 1)
    with pytest.raises(SchemaError, match="more than this model's limit of 100 "):
        decode_image(png, "L", max_bytes=100)
    with pytest.raises(SchemaError, match="more than this model's limit of 500 "):
        decode_image(png, "L", max_pixels=500)
    with pytest.raises(SchemaError, match="decompression bomb"):
        decode_image(bomb_png(), "L")
    with pytest.raises(SchemaError, match="not base64"):
        decode_image("not base64 at all!", "L")
    with pytest.raises(SchemaError, match="not a PNG, JPEG or WebP"):
        decode_image(b"GIF89a" + b"\x00" * 40, "L")


def test_static_int8_through_fulcrum_optimize(trained, capsys):
    _, reg = trained
    rc, out, err = cli(capsys, "optimize", "digits3", "--variants", "int8-static", "--registry", reg.root, "--json")
    assert rc == 0, err
    variants = reg.load("digits3").manifest["variants"]
    assert variants["int8-static"]["metrics"]["accuracy"] >= variants["base"]["metrics"]["accuracy"] - 0.1
    graph = reg.load("digits3").read_bytes("variants/int8-static/model.onnx")
    import onnx

    ops = {n.op_type for n in onnx.load_from_string(graph).graph.node}
    assert "QuantizeLinear" in ops and "Loop" in ops  # the CNN quantized, the pre-processing kept float


def test_pruned_and_distilled_cnns_through_fulcrum_optimize(trained, capsys):
    """Structured channel pruning (half the channels, a short fine-tune) and a half-width CNN trained on the
    package's probabilities: smaller CNNs in the same one graph from raw pixels, measured like every variant."""
    import onnx

    _, reg = trained
    rc, out, err = cli(capsys, "optimize", "digits3", "--variants", "pruned,distilled", "--registry", reg.root)
    assert rc == 0, err
    pkg = reg.load("digits3")
    m = pkg.manifest
    base_widths = m["model"]["spec"]["widths"]
    pruned, distilled = m["variants"]["pruned-50"], m["variants"]["distilled"]
    halved = [[max(1, round(c / 2)) for c in stage] for stage in base_widths]
    assert pruned["params"]["widths"] == halved and pruned["params"]["keep"] == 0.5
    assert distilled["params"]["widths"][0][0] == base_widths[0][0] // 2
    for vid, v in (("pruned-50", pruned), ("distilled", distilled)):
        assert v["metrics"]["accuracy"] >= 0.6, (vid, v["metrics"])  # 3 digits: chance is 0.33
        g = onnx.load_from_string(pkg.read_bytes(f"variants/{vid}/model.onnx"))
        assert [i.name for i in g.graph.input] == ["image", "image_size"]
    from fulcrum.tasks.image._variants import load_model

    parent = sum(t.numel() for t in load_model(pkg).parameters())
    assert pruned["params"]["parameters"] < 0.4 * parent and distilled["params"]["parameters"] < 0.4 * parent
    assert "pruned-50" in out and "distilled" in out


def test_builtin_lfw_faces_real_photographs_from_scikit_image_train(tmp_path, capsys):
    from fulcrum.data import load_builtin

    frame = load_builtin("lfw_faces")
    assert frame["label"].value_counts().to_dict() == {"face": 100, "not_face": 100}
    assert decode_image(frame["image"][0], "L").shape == (50, 50, 1)
    rc, out, err = cli(capsys, "train", "builtin:lfw_faces", "--name", "faces", "--registry", tmp_path / "reg",
                       "--set=epochs=12", "--set=image_size=16", "--no-progress")
    assert rc == 0, err
    m = Registry(tmp_path / "reg").load("faces").manifest
    assert m["metrics"]["primary"]["value"] >= 0.75  # face vs background on 40 held-out photographs
