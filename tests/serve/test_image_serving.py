"""An image model on a real server (127.0.0.1): base64 images through the friendly route (the `images` shorthand
and records), v2 BYTES tensors, and the limits: a corrupt image, a non-image, a decompression bomb and an image
over the byte limit are 422s naming the problem; a body over the server's byte limit is a 413."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from image_fixtures import bomb_png, digit_images, encode  # noqa: E402
from test_every_task import Server  # noqa: E402  (the every-task in-process uvicorn server on port 0)

from fulcrum.artifact import Registry  # noqa: E402


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from image_fixtures import train_folder

    _, reg = train_folder(tmp_path_factory.mktemp("imgserve"), "digits", "--set=epochs=15", "--set=image_size=16",
                          "--set=max_bytes=4000", per_class=20)
    with Server("digits", Registry(reg), max_body_bytes=200_000) as client:
        yield client


def test_images_shorthand_records_and_v2_bytes_agree(served):
    c = served
    imgs = [encode(px) for px, _ in digit_images(2, (0, 7))]
    # a larger JPEG of the same digit: any size and format is taken
    from PIL import Image

    big = np.asarray(Image.fromarray(digit_images(1, (1,))[0][0]).resize((60, 45)))
    imgs.append(encode(big, "JPEG"))
    r = c.post("/v1/models/digits/predict", json={"images": [b64(x) for x in imgs]})
    assert r.status_code == 200, r.text
    short = r.json()["predictions"]
    assert len(short) == 5
    r = c.post("/v1/models/digits/predict", json={"records": [{"image": b64(x)} for x in imgs]})
    assert r.status_code == 200 and r.json()["predictions"] == short
    r = c.post("/v2/models/digits/infer",
               json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [5], "data": [b64(x) for x in imgs]}]})
    assert r.status_code == 200, r.text
    assert [str(p) for p in r.json()["outputs"][0]["data"]] == [str(p) for p in short]
    meta = c.get("/v2/models/digits").json()
    assert [i["name"] for i in meta["inputs"]] == ["image"]


@pytest.mark.parametrize("case, value, message", [
    ("corrupt", b64(b"\x89PNG\r\n\x1a\n" + b"x" * 50), "cannot be decoded"),
    ("not an image", b64(b"just some text, not a picture at all"), "not a PNG, JPEG or WebP"),
    ("not base64", "%%%% not base64 %%%%", "not base64"),
    ("bomb", b64(bomb_png()), "decompression bomb"),
    ("over max_bytes", b64(encode(np.random.default_rng(0).integers(0, 255, (80, 80), dtype=np.uint8))),
     "more than this model's limit of 4000 (max_bytes)"),
])
def test_bad_images_are_422_naming_the_problem(served, case, value, message):
    good = b64(encode(digit_images(1, (0,))[0][0]))
    r = served.post("/v1/models/digits/predict", json={"images": [good, value]})
    assert r.status_code == 422, (case, r.status_code, r.text)
    assert message in r.text and "row 1" in r.text, r.text


def test_a_body_over_the_server_limit_is_413(served):
    r = served.post("/v1/models/digits/predict", json={"images": ["A" * 300_000]})
    assert r.status_code == 413


# -- multipart uploads (curl -F image=@photo.png) --------------------------------------------------------------


def test_multipart_upload_of_files_agrees_with_json(served):
    imgs = [encode(px) for px, _ in digit_images(2, (0, 7))]
    json_preds = served.post("/v1/models/digits/predict", json={"images": [b64(x) for x in imgs]}).json()
    r = served.post("/v1/models/digits/predict", files=[("image", (f"{i}.png", x, "image/png")) for i, x in enumerate(imgs)])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == json_preds["predictions"] and len(body["ood"]) == 4
    r = served.post("/v1/models/digits/predict", files=[("images", ("a.png", imgs[0], "image/png"))])
    assert r.status_code == 200 and r.json()["predictions"] == json_preds["predictions"][:1]
    doc = served.get("/openapi.json").json()
    assert "multipart/form-data" in doc["paths"]["/v1/models/digits/predict"]["post"]["requestBody"]["content"]


def test_curl_dash_f_as_in_the_readme(served, tmp_path):
    import shutil
    import subprocess

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    photo = tmp_path / "photo.png"
    photo.write_bytes(encode(digit_images(1, (7,))[0][0]))
    url = f"{served.base_url}/v1/models/digits/predict"
    out = subprocess.run(["curl", "-s", "-F", f"image=@{photo}", url], capture_output=True, text=True, timeout=60)
    import json

    assert json.loads(out.stdout)["predictions"] == ["7"], out.stdout


@pytest.mark.parametrize("case, data, status, message", [
    ("over max_bytes", encode(np.random.default_rng(0).integers(0, 255, (80, 80), dtype=np.uint8)), 422,
     "'big.png' (row 1) has"),
    ("bomb", bomb_png(), 422, "decompression bomb"),
    ("corrupt", b"\x89PNG\r\n\x1a\n" + b"x" * 50, 422, "cannot be decoded"),
    ("empty", b"", 422, "is empty"),
    ("over the body limit", b"\x89PNG\r\n\x1a\n" + bytes(250_000), 413, "exceeds the limit of 200000"),
])
def test_bad_uploads_are_refused_naming_the_file_and_the_limit(served, case, data, status, message):
    good = encode(digit_images(1, (0,))[0][0])
    name = {"over max_bytes": "big.png", "bomb": "bomb.png"}.get(case, "bad.png")
    r = served.post("/v1/models/digits/predict", files=[("image", ("ok.png", good, "image/png")),
                                                        ("image", (name, data, "image/png"))])
    assert r.status_code == status, (case, r.status_code, r.text)
    assert message in r.text, r.text
    if status == 422 and case != "empty":
        assert name in r.text and ("max_bytes" in r.text or "max_pixels" in r.text or "decoded" in r.text)


def test_uploads_without_a_file_or_with_other_fields_are_422(served):
    r = served.post("/v1/models/digits/predict", data={"image": "not a file"}, files=[("x", ("a.txt", b"", "text/plain"))])
    assert r.status_code == 422 and "is text" in r.text, r.text
    good = encode(digit_images(1, (0,))[0][0])
    r = served.post("/v1/models/digits/predict", files=[("photo", ("a.png", good, "image/png"))])
    assert r.status_code == 422 and "'photo' is not an input" in r.text and "-F image=@photo.png" in r.text
    r = served.post("/v1/models/digits/predict", content=b"--xyz--\r\n",
                    headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 422 and "holds no file" in r.text, r.text


# -- out-of-scope inputs, reported per request -----------------------------------------------------------------


def test_noise_images_are_flagged_out_of_scope_and_held_out_digits_are_not(served):
    held_out = [encode(px) for px, _ in digit_images(36, (0, 1, 7))[20:36]]  # not among the 20 per class trained on
    held_out += [encode(px) for px, _ in digit_images(36, (0, 1, 7))[56:72] + digit_images(36, (0, 1, 7))[92:108]]
    rng = np.random.default_rng(1)
    noise = [encode(rng.integers(0, 256, (24, 24), dtype=np.uint8)) for _ in range(6)]
    noise += [encode(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)) for _ in range(2)]  # colour, another size
    r = served.post("/v1/models/digits/predict", json={"images": [b64(x) for x in held_out + noise]})
    assert r.status_code == 200, r.text
    body = r.json()
    flags, scores = body["ood"], body["ood_scores"]
    assert len(flags) == len(held_out) + len(noise)
    assert all(flags[len(held_out):]), scores[len(held_out):]  # every noise image
    assert sum(flags[: len(held_out)]) <= 0.1 * len(held_out), scores[: len(held_out)]
    threshold = next(o for o in served.get("/v2/models/digits").json()["outputs"] if o["name"] == "ood_score")
    assert min(scores[len(held_out):]) >= threshold["parameters"]["threshold"] > max(sorted(scores[: len(held_out)])[:-4])
    r = served.post("/v1/models/digits/predict", files=[("image", ("noise.png", noise[0], "image/png"))])
    assert r.json()["ood"] == [True]  # the same verdict for an upload
