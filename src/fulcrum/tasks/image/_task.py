"""ImageTask: image classification from raw encoded images, behind the task contract (tasks/_base.py)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import pandas as pd

from .._media import FolderReading
from .._base import InputCodec, InputField, ReadJson, Task, TaskExample, Trained, VariantKind
from ._codec import ImageCodec
from ._config import ImageConfig
from ._data import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, FILES, image_columns, path_columns, read_folder

__all__ = ["ImageTask"]



class ImageTask(FolderReading, Task):
    """Image classification: images (PNG/JPEG/WebP) and a label -> label, class probabilities, OOD score.

    Data: a folder of class subfolders of images, or a table with an image column (base64) or a column of
    paths (resolved inside the dataset root only). Model: a small CNN trained from scratch through the shared
    Trainer. The package's ``model.onnx`` takes raw decoded pixels of any size (``image`` uint8 (N, H, W, C) +
    ``image_size`` (N, 2)) and resizes and normalizes them itself.
    """

    name: ClassVar[str] = "image"
    summary: ClassVar[str] = ("image classification from PNG/JPEG/WebP files: a small CNN (width/depth knobs) trained "
                              "from scratch; one graph from raw pixels of any size")
    kinds: ClassVar[tuple[str, ...]] = ("classification",)
    config_class: ClassVar[type | None] = ImageConfig
    files = FILES
    encoded_what = "images (PNG/JPEG/WebP)"
    paths_what = "image file paths"
    encoded_columns = staticmethod(image_columns)
    path_columns = staticmethod(path_columns)
    read_folder = staticmethod(read_folder)

    def example(self) -> TaskExample:
        """300 of scikit-learn's handwritten digits as 32x32 PNG images (30 per digit), a few epochs."""
        from ...data import load_builtin

        frame = load_builtin("digits_images")
        frame = pd.concat([g.sample(30, random_state=0) for _, g in frame.groupby("label")])
        return TaskExample(frame.sample(frac=1.0, random_state=0).reset_index(drop=True), "label",
                           {"image_size": 16, "epochs": 30}, "builtin:digits_images (300 images) at 16x16")

    # ------------------------------------------------------------------ training side

    def fit(self, frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
            checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
        from ._fit import fit_image

        return fit_image(frame, config, source=source, callbacks=callbacks, checkpoint_dir=checkpoint_dir, log=log)

    def splits(self, package: Any, data: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        from ._variants import recreate_splits

        return recreate_splits(package, data)

    # ------------------------------------------------------------------ inference side

    def input_codec(self, manifest: Mapping[str, Any], read_json: ReadJson) -> InputCodec:
        lim = _limits(manifest)
        return ImageCodec(manifest["model"]["mode"], lim["max_bytes"], lim["max_pixels"],
                          manifest["task"].get("image_column"))

    def request_schema(self, manifest: Mapping[str, Any]) -> list[InputField]:
        lim = _limits(manifest)
        column = manifest["task"].get("image_column")
        other = column if column and column != "image" else None
        limits: dict[str, Any] = {"max_bytes": lim["max_bytes"], "max_pixels": lim["max_pixels"],
                                  "formats": ["PNG", "JPEG", "WEBP"]}
        if other:
            limits["aliases"] = [other]
        return [InputField("image", "image", ("BYTES",), description=(
            f"an image file (PNG, JPEG or WebP), base64-encoded: at most {lim['max_bytes']} bytes and "
            f"{lim['max_pixels']} pixels; any size, resized by the model to {manifest['model']['image_size']}x"
            f"{manifest['model']['image_size']}"), limits=limits, example=_example_image(manifest["model"]["mode"]))]

    def shorthand(self, manifest: Mapping[str, Any]) -> tuple[str, str] | None:
        return ("images", "image")

    def variant_kinds(self, manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
        from ._variants import variant_kinds

        return variant_kinds(manifest)

    def variant_ids(self, kind: VariantKind, options: Any) -> list[tuple[str, dict[str, Any]]]:
        if kind.kind == "pruned":
            return [(f"pruned-{int(round(100 * (1 - float(kind.params.get('keep', 0.5)))))}", dict(kind.params))]
        return [(kind.kind, dict(kind.params))]

    def variant_from_id(self, vid: str, kinds: Sequence[VariantKind]) -> tuple[str, dict[str, Any]] | None:
        if vid.startswith("pruned-") and vid[7:].isdigit() and 0 < int(vid[7:]) < 100:
            return "pruned", {"keep": 1 - int(vid[7:]) / 100}
        return None

    def build_variant(self, kind: str, params: Mapping[str, Any], package: Any, context: Any) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
        from ._variants import build_variant

        return build_variant(kind, params, package, context)

    def flops_per_prediction(self, manifest: Mapping[str, Any]) -> tuple[int, str]:
        from ._cnn import conv_flops

        m = manifest["model"]
        if m.get("family") == "efficientnet_lite0":
            from ._pretrained import flops

            return flops(int(m["image_size"]), int(m["spec"]["classes"])), (
                "EfficientNet-Lite0: 2 x k x k x C_in x C_out x H x W per convolution (depthwise: x C once) + the "
                "head, at the graph's size (the resize not counted)")
        return conv_flops(m["spec"], int(m["image_size"])), (
            "2 x 9 x C_in x C_out x H x W per convolution + the head, at the training size (the resize not counted)")


def _limits(manifest: Mapping[str, Any]) -> dict[str, int]:
    for item in manifest.get("inputs") or []:
        lim = item.get("limits") or {}
        if lim.get("max_pixels"):
            return {"max_bytes": int(lim.get("max_bytes") or DEFAULT_MAX_BYTES), "max_pixels": int(lim["max_pixels"])}
    return {"max_bytes": DEFAULT_MAX_BYTES, "max_pixels": DEFAULT_MAX_PIXELS}


@lru_cache(maxsize=2)
def _example_image(mode: str) -> str:
    """A small grey PNG, base64: the server's warm-up request and the docs' example."""
    import io

    from PIL import Image

    from ._data import to_base64

    buf = io.BytesIO()
    Image.new(mode, (16, 16), 128).save(buf, format="PNG")
    return to_base64(buf.getvalue())
