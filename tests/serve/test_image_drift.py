"""Image drift on a real server (127.0.0.1): the image graph reports each request's brightness, height and width
(manifest outputs of kind "monitored"), the server's monitor treats them as numeric columns against the training
images' profile, and `fulcrum monitor` reports what the server saw: no drift for training-like digits, drift of
``image_brightness`` for much darker images and of ``image_height`` / ``image_width`` for enlarged ones."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from image_fixtures import digit_images, encode, train_folder  # noqa: E402
from .test_image_serving import Server  # noqa: E402  (the same in-process uvicorn server on port 0)

from fulcrum.artifact import Registry  # noqa: E402
from fulcrum.cli import main  # noqa: E402

MONITORED = ("image_brightness", "image_height", "image_width")


def b64s(images: list[np.ndarray]) -> list[str]:
    return [base64.b64encode(encode(px)).decode() for px in images]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return train_folder(tmp_path_factory.mktemp("imgdrift"), "digits", "--set=epochs=2", "--set=image_size=16",
                        per_class=20)[1]


def send(client, images: list[np.ndarray], batch: int = 50) -> None:
    for s in range(0, len(images), batch):
        r = client.post("/v1/models/digits/predict", json={"images": b64s(images[s: s + batch])})
        assert r.status_code == 200, r.text
        assert not set(MONITORED) & set(r.json()), "monitored quantities are for the monitor, not the answer"


def drifted(client) -> tuple[str, list[str], dict]:
    snap = client.get("/v1/models/digits/monitor").json()
    return snap["status"], snap["drifted_columns"], snap["drift"]


def test_darker_and_larger_images_drift_training_like_ones_do_not(registry, capsys):
    pkg = Registry(registry).load("digits")
    assert [o["name"] for o in pkg.manifest["outputs"] if o["kind"] == "monitored"] == list(MONITORED)
    # digits the model never saw (later ones of each class), as 24x24 PNGs like the training images
    held = [px for i, (px, _) in enumerate(digit_images(60, (0, 1, 7))) if i % 60 >= 20]
    assert len(held) == 120
    with Server("digits", Registry(registry)) as c:
        send(c, held)
        status, cols, drift = drifted(c)
        assert status == "ok" and cols == [], (cols, {k: drift[k].get("psi") for k in MONITORED})
        assert all(drift[k]["status"] == "ok" and drift[k]["n"] == 120 for k in MONITORED)
        dark = [(px // 5).astype(np.uint8) for px in held] * 3
        send(c, dark)
        status, cols, drift = drifted(c)
        assert status == "drift" and cols == ["image_brightness"], cols
        assert drift["image_brightness"]["mean"]["window"] < drift["image_brightness"]["mean"]["train"]
        from PIL import Image

        big = [np.asarray(Image.fromarray(px).resize((40, 40), Image.NEAREST)) for px in held] * 4
        send(c, big)
        status, cols, drift = drifted(c)
        assert {"image_height", "image_width"} <= set(cols), cols
    # what the server saved on the way out, through the CLI
    capsys.readouterr()
    assert main(["monitor", "digits", "--json", "--registry", str(registry)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["origin"] == "server"
    assert {"image_height", "image_width"} <= set(report["snapshot"]["drifted_columns"])
    assert report["snapshot"]["drift"]["image_width"]["mean"]["window"] > 30


def test_the_int8_split_keeps_the_monitored_outputs(registry):
    """static int8 quantizes the graph after ``pixels``; the size outputs are computed before it and survive."""
    import onnx

    from fulcrum.optimize._quantize import join_graphs, split_graph

    graph = onnx.load_from_string(Registry(registry).load("digits").read_bytes("model.onnx"))
    head, tail = split_graph(graph, "pixels")
    assert {"image_height", "image_width"} <= {o.name for o in head.graph.output}
    joined = join_graphs(head, tail)
    assert {o.name for o in joined.graph.output} == {o.name for o in graph.graph.output}


def test_fulcrum_monitor_data_runs_the_graph_for_the_image_quantities(registry, tmp_path, capsys):
    import pandas as pd

    held = [px for i, (px, _) in enumerate(digit_images(60, (0, 1, 7))) if i % 60 >= 20]
    reports = {}
    for name, images in (("like", held), ("bright", [(255 - (255 - px) // 4).astype(np.uint8) for px in held])):
        path = tmp_path / f"{name}.csv"
        pd.DataFrame({"image": b64s(images)}).to_csv(path, index=False)
        capsys.readouterr()
        assert main(["monitor", "digits", "--data", str(path), "--json", "--registry", str(registry)]) == 0
        reports[name] = json.loads(capsys.readouterr().out)["snapshot"]
    assert reports["like"]["drifted_columns"] == [], reports["like"]["drift"]
    assert reports["bright"]["drifted_columns"] == ["image_brightness"], reports["bright"]["drifted_columns"]
