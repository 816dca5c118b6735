"""Export a model package to ONE ONNX graph: raw input columns -> preprocessing -> model -> outputs.

Input conventions (one graph input per raw feature column, named after it, shape ``[N, 1]``):

=============  ================  ===================================  =========================================
column kind    ONNX type         missing value                        notes
=============  ================  ===================================  =========================================
numeric        tensor(double)    NaN                                  +/-inf is refused by the Predictor
boolean        tensor(double)    NaN                                  1.0 = true, 0.0 = false
categorical    tensor(string)    "", whitespace only, or "nan"        compared as text, exactly as stored in
                                                                      preprocess.json: strip surrounding
                                                                      spaces, whole floats written "3" (not
                                                                      "3.0"), booleans "true" / "false";
                                                                      unseen categories encode as all zeros
text           tensor(string)    "" or "nan"                          lowercased (ASCII), tokens are runs of
                                                                      [a-z0-9], binary bag of words
datetime       tensor(int64)     INT64_MIN (-9223372036854775808,     whole seconds since 1970-01-01T00:00:00
                                 numpy's NaT)                         UTC; year, month, day of week (Monday =
                                                                      0) and day of year are computed in the
                                                                      graph (civil-from-days, integer ops)
=============  ================  ===================================  =========================================

The Predictor converts Python/pandas values to these for you (dates parsed, categories
stripped, validation with the same messages as the Python path). The literal string
"nan" counts as missing in the graph (it is what ``str(float("nan"))`` and ``astype(str)``
write, and what CSV readers turn into NaN), whereas the Python Preprocessor would treat
a literal "nan" string in an in-memory frame as a category or a word.

Outputs: classification ``probabilities`` float32 ``[N, K]`` (columns in the manifest's
label order) and ``label`` int64 ``[N]`` (index of the largest probability); regression
``value`` float32 ``[N]``. In the unlikely case a raw column is itself named like an
output, that output is called ``output:<name>`` instead (the manifest lists the names).

Running a package's graph with plain ONNX Runtime, no Fulcrum needed (``cd`` into the
package directory; the columns are a penguins model's inputs)::

    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession("model.onnx")
    columns = {  # raw values, one list per input column; NaN / "" mark missing values
        "island": ["Biscoe", "Dream"], "bill_length_mm": [39.1, np.nan], "bill_depth_mm": [18.7, 17.4],
        "flipper_length_mm": [181.0, 186.0], "body_mass_g": [3750.0, 3800.0], "sex": ["male", ""], "year": [2007, 2008],
    }
    dtypes = {"tensor(double)": np.float64, "tensor(string)": object, "tensor(int64)": np.int64}
    feeds = {i.name: np.asarray(columns[i.name], dtype=dtypes[i.type]).reshape(-1, 1) for i in session.get_inputs()}
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    print(outputs["probabilities"], outputs["label"])  # regression models output "value"
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Iterable, Mapping

import numpy as np

from ...errors import ConfigError, FormatError
from .._graph import graph_signature

__all__ = [
    "DEFAULT_OPSET",
    "MISSING_DATETIME",
    "INPUT_TYPES",
    "export_preprocess",
    "export_model",
    "compose",
    "export_package_graph",
    "graph_signature",
]

#: Default-domain opset of every exported graph: RegexFullMatch needs 20, and 20 is the
#: highest the TorchScript-based torch exporter writes. ai.onnx.ml ops (LightGBM trees)
#: come at the version onnxmltools writes; com.microsoft (Tokenizer) at 1.
DEFAULT_OPSET = 20
#: The int64 that marks a missing datetime (numpy's NaT viewed as int64).
MISSING_DATETIME = int(np.iinfo(np.int64).min)
#: Graph input type per column kind.
INPUT_TYPES = {
    "numeric": "tensor(double)",
    "boolean": "tensor(double)",
    "categorical": "tensor(string)",
    "text": "tensor(string)",
    "datetime": "tensor(int64)",
}
FEATURES = "features"
MISSING_CATEGORY = "<missing>"  # = fulcrum.data._coerce.MISSING_CATEGORY
_BLANK_OR_NAN = r"\s*|nan"
_TOKEN = "[a-z0-9]+"  # = fulcrum.data._coerce.tokenize
_PAD = "#"  # Tokenizer padding; never a [a-z0-9]+ token, so never in a vocabulary
_LGBM_MAX_OPSET = 15  # onnxmltools' converter ceiling; the default domain is then upgraded
_SECONDS_PER_DAY = 86_400


def _onnx() -> Any:
    import onnx

    return onnx


# ----------------------------------------------------------------------------- graph building


class _Builder:
    """Collects nodes and initializers, handing out edge names that never collide with ``reserved``."""

    def __init__(self, reserved: Iterable[str], prefix: str) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.used = set(reserved)
        self.prefix = prefix
        self.count = 0

    def name(self, hint: str) -> str:
        while True:
            self.count += 1
            candidate = f"{self.prefix}{self.count}_{hint}"
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate

    def const(self, value: Any, dtype: Any, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str = "", *, domain: str = "", out: str | None = None,
           **attrs: Any) -> str:
        from onnx import helper

        output = out or self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=self.name(op_type), domain=domain, **attrs))
        return output


def _floor_div(b: _Builder, x: str, d: int, hint: str) -> str:
    """Floor division of an int64 edge by a positive constant (exact: (x - x mod d) / d)."""
    dc = b.const(d, np.int64)
    rem = b.op("Mod", [x, dc], f"{hint}_mod", fmod=0)  # sign of the divisor: 0 <= rem < d
    return b.op("Div", [b.op("Sub", [x, rem]), dc], hint)


def _numeric_blocks(b: _Builder, steps: list[Mapping[str, Any]]) -> tuple[str, str | None, list[int]]:
    """All numeric and boolean columns at once: [N, k] double -> impute -> clip -> standardize.

    Returns (scaled [N, k] float32, missing indicators [N, m] float32 or None, which of the k
    columns have an indicator). A boolean column is a numeric one with median = training
    mode, mean 0, std 1 (exact: (x - 0) / 1 == x). Batching keeps the op count (and the
    per-op overhead that dominates single-row latency) independent of the column count.
    """
    onnx = _onnx()
    k = len(steps)

    def vec(key: str, default: float) -> np.ndarray:
        return np.array([[float(st.get(key, default)) if st["kind"] == "numeric" else default for st in steps]])

    medians = np.array([[float(st["median"]) if st["kind"] == "numeric" else float(st["mode"]) for st in steps]])
    x = steps[0]["name"] if k == 1 else b.op("Concat", [st["name"] for st in steps], "numeric", axis=1)
    nan = b.op("IsNaN", [x], "isnan")
    filled = b.op("Where", [nan, b.const(medians, np.float64, "medians"), x], "filled")
    clips = [st.get("clip") if st["kind"] == "numeric" else None for st in steps]
    if any(c is not None for c in clips):  # the median lies inside the clip range: impute-then-clip == clip-then-impute
        lo = np.array([[c[0] if c is not None else -np.inf for c in clips]])
        hi = np.array([[c[1] if c is not None else np.inf for c in clips]])
        filled = b.op("Min", [b.op("Max", [filled, b.const(lo, np.float64, "clip_lo")]), b.const(hi, np.float64, "clip_hi")],
                      "clipped")
    z = b.op("Div", [b.op("Sub", [filled, b.const(vec("mean", 0.0), np.float64, "means")]),
                     b.const(vec("std", 1.0), np.float64, "stds")], "z")
    scaled = b.op("Cast", [z], "scaled", to=onnx.TensorProto.FLOAT)
    flagged = [j for j, st in enumerate(steps) if st["kind"] == "numeric" and st.get("missing_indicator")]
    indicators = None
    if flagged:
        indicators = b.op("Cast", [b.op("Gather", [nan, b.const(flagged, np.int64, "flagged")], axis=1)], "missing",
                          to=onnx.TensorProto.FLOAT)
    return scaled, indicators, flagged


def _standardize(b: _Builder, x: str, params: Mapping[str, Any], missing: str | None, hint: str) -> str:
    """double edge -> impute median where ``missing`` -> (x - mean) / std -> float32 (Preprocessor._scale)."""
    onnx = _onnx()
    if missing is not None:
        x = b.op("Where", [missing, b.const(params["median"], np.float64, "median"), x], f"{hint}_filled")
    z = b.op("Div", [b.op("Sub", [x, b.const(params["mean"], np.float64, "mean")]), b.const(params["std"], np.float64, "std")])
    return b.op("Cast", [z], hint, to=onnx.TensorProto.FLOAT)


def _categorical_block(b: _Builder, x: str, step: Mapping[str, Any]) -> list[tuple[str, int]]:
    """string [N, 1] -> one-hot [N, K]: a hash lookup (LabelEncoder, unseen -> -1), then K integer compares."""
    onnx = _onnx()
    cats = list(step["categories"])
    if not cats:
        return []
    code = b.op("LabelEncoder", [x], "code", domain="ai.onnx.ml", keys_strings=cats, values_int64s=list(range(len(cats))),
                default_int64=-1)
    blank = b.op("RegexFullMatch", [x], "blank", pattern=_BLANK_OR_NAN)
    missing_code = cats.index(MISSING_CATEGORY) if MISSING_CATEGORY in cats else -1
    code = b.op("Where", [blank, b.const(missing_code, np.int64, "missing_code"), code], "code_or_missing")
    hits = b.op("Equal", [code, b.const(np.arange(len(cats), dtype=np.int64)[None, :], np.int64, "codes")], "onehot_bool")
    return [(b.op("Cast", [hits], "onehot", to=onnx.TensorProto.FLOAT), len(cats))]


def _text_block(b: _Builder, x: str, step: Mapping[str, Any]) -> list[tuple[str, int]]:
    vocab = list(step["vocabulary"])
    if not vocab:
        return []
    is_nan = b.op("RegexFullMatch", [x], "is_nan", pattern="nan")
    x = b.op("Where", [is_nan, b.const([[""]], object, "empty"), x], "text")
    flat = b.op("Reshape", [x, b.const([-1], np.int64, "flat")], "flat_text")  # [N]
    # locale "C": always available; only ASCII letters change case, and only they can form [a-z0-9] tokens
    lower = b.op("StringNormalizer", [flat], "lower", case_change_action="LOWER", is_case_sensitive=1, locale="C")
    tokens = b.op("Tokenizer", [lower], "tokens", domain="com.microsoft", mark=0, mincharnum=1, pad_value=_PAD,
                  tokenexp=_TOKEN)  # [N, max tokens]
    counts = b.op("TfIdfVectorizer", [tokens], "counts", mode="TF", min_gram_length=1, max_gram_length=1,
                  max_skip_count=0, ngram_counts=[0], ngram_indexes=list(range(len(vocab))), pool_strings=vocab)
    return [(b.op("Min", [counts, b.const(1.0, np.float32, "one")], "present"), len(vocab))]  # [N, V] binary


def _datetime_block(b: _Builder, x: str, step: Mapping[str, Any]) -> list[tuple[str, int]]:
    """int64 epoch seconds -> year, month, day of week, day of year (Howard Hinnant's civil_from_days)."""
    onnx = _onnx()
    i64 = np.int64

    def c(v: int) -> str:
        return b.const(v, i64)

    missing = b.op("Equal", [x, c(MISSING_DATETIME)], "nat")
    secs = b.op("Where", [missing, c(0), x], "secs")
    days = _floor_div(b, secs, _SECONDS_PER_DAY, "days")
    dow = b.op("Mod", [b.op("Add", [days, c(3)]), c(7)], "dow", fmod=0)  # 1970-01-01 was a Thursday (3)
    z = b.op("Add", [days, c(719_468)], "z")  # days since 0000-03-01
    era = _floor_div(b, z, 146_097, "era")
    doe = b.op("Sub", [z, b.op("Mul", [era, c(146_097)])], "doe")  # [0, 146096]; non-negative from here on
    yoe = b.op("Div", [
        b.op("Sub", [b.op("Add", [b.op("Sub", [doe, b.op("Div", [doe, c(1460)])]), b.op("Div", [doe, c(36_524)])]),
                     b.op("Div", [doe, c(146_096)])]),
        c(365)], "yoe")  # [0, 399]
    y = b.op("Add", [yoe, b.op("Mul", [era, c(400)])], "y")
    doy = b.op("Sub", [doe, b.op("Sub", [b.op("Add", [b.op("Mul", [yoe, c(365)]), b.op("Div", [yoe, c(4)])]),
                                         b.op("Div", [yoe, c(100)])])], "doy_mar")  # [0, 365], March 1 = 0
    mp = b.op("Div", [b.op("Add", [b.op("Mul", [doy, c(5)]), c(2)]), c(153)], "mp")  # [0, 11], March = 0
    jan_feb = b.op("GreaterOrEqual", [mp, c(10)], "jan_feb")
    month = b.op("Add", [mp, b.op("Where", [jan_feb, c(-9), c(3)])], "month")
    year = b.op("Add", [y, b.op("Cast", [jan_feb], to=onnx.TensorProto.INT64)], "year")

    def divisible(n: int) -> str:
        return b.op("Equal", [b.op("Mod", [year, c(n)], fmod=0), c(0)])

    leap = b.op("Or", [b.op("And", [divisible(4), b.op("Not", [divisible(100)])]), divisible(400)], "leap")
    # day of year (1-based): Jan/Feb come 306 days after March 1 of the previous year
    after_feb = b.op("Add", [b.op("Add", [doy, c(60)]), b.op("Cast", [leap], to=onnx.TensorProto.INT64)])
    day_of_year = b.op("Where", [jan_feb, b.op("Sub", [doy, c(305)]), after_feb], "day_of_year")
    out = []
    for part, edge in (("year", year), ("month", month), ("day_of_week", dow), ("day_of_year", day_of_year)):
        as_double = b.op("Cast", [edge], f"{part}_f64", to=onnx.TensorProto.DOUBLE)
        out.append((_standardize(b, as_double, step["parts"][part], missing, part), 1))
    return out


_BLOCKS = {
    "categorical": _categorical_block,
    "text": _text_block,
    "datetime": _datetime_block,
}
ML_OPSET = 3  # ai.onnx.ml: LabelEncoder v2 (string keys -> int64 values); TreeEnsemble* v3 = v1 + optional attributes
_ELEM = {"tensor(double)": 11, "tensor(string)": 8, "tensor(int64)": 7, "tensor(float)": 1}


def _opsets(model: Any) -> dict[str, int]:
    return {(o.domain or ""): int(o.version) for o in model.opset_import}


def _set_opsets(model: Any, opsets: Mapping[str, int]) -> None:
    from onnx import helper

    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(opsets.items()))


def export_preprocess(preprocess: Mapping[str, Any], opset: int = DEFAULT_OPSET) -> Any:
    """The fitted Preprocessor (``Preprocessor.to_dict()``, i.e. preprocess.json) as an ONNX graph.

    One input per raw feature column (see the module docstring for types and missing
    values); one output ``features`` float32 ``[N, D]`` equal to ``Preprocessor.transform``.
    """
    onnx = _onnx()
    from onnx import helper

    if opset < 20:
        raise ConfigError(f"export_preprocess needs opset >= 20 (RegexFullMatch, string Equal); got {opset}.")
    try:
        steps = list(preprocess["columns"])
        names = [s["name"] for s in steps]
        kinds = [s["kind"] for s in steps]
    except (KeyError, TypeError) as exc:
        raise FormatError(f"preprocess dict is malformed ({exc!r}); pass Preprocessor.to_dict() / preprocess.json.") from exc
    if not steps:
        raise FormatError("preprocess dict has no columns; nothing to export.")
    for step in steps:
        if step["kind"] not in INPUT_TYPES:
            raise FormatError(f"Column {step['name']!r} has kind {step['kind']!r}, which the ONNX export does not support.")
    out_name = FEATURES if FEATURES not in names else f"output:{FEATURES}"
    b = _Builder([*names, out_name], prefix="pre_")
    inputs = [helper.make_tensor_value_info(s["name"], _ELEM[INPUT_TYPES[s["kind"]]], ["N", 1]) for s in steps]

    # Blocks are computed grouped (all numeric columns together), then one Gather puts the
    # feature columns back in the Preprocessor's order. slots[i]: step i's positions in the concat.
    blocks: list[str] = []
    slots: list[list[int]] = [[] for _ in steps]
    width = 0
    numeric = [i for i, k in enumerate(kinds) if k in ("numeric", "boolean")]
    if numeric:
        scaled, indicators, flagged = _numeric_blocks(b, [steps[i] for i in numeric])
        blocks.append(scaled)
        for j, i in enumerate(numeric):
            slots[i].append(width + j)
        width += len(numeric)
        if indicators is not None:
            blocks.append(indicators)
            for t, j in enumerate(flagged):
                slots[numeric[j]].append(width + t)
            width += len(flagged)
    for i, step in enumerate(steps):
        if step["kind"] in _BLOCKS:
            for edge, w in _BLOCKS[step["kind"]](b, step["name"], step):
                blocks.append(edge)
                slots[i].extend(range(width, width + w))
                width += w
    order = [p for s in slots for p in s]
    expected = len(preprocess.get("feature_names", order))
    if width != expected:
        raise FormatError(f"preprocess dict lists {expected} features but its columns describe {width}; "
                          "it must be what Preprocessor.to_dict() wrote.")
    if not blocks:  # no feature at all: an [N, 0] matrix
        first = b.op("Cast", [names[0]], to=onnx.TensorProto.FLOAT)
        b.op("Slice", [first, b.const([0], np.int64), b.const([0], np.int64), b.const([1], np.int64)], out=out_name)
    elif order == list(range(width)):
        b.op("Concat", blocks, out=out_name, axis=1) if len(blocks) > 1 else b.op("Identity", blocks, out=out_name)
    else:
        grouped = b.op("Concat", blocks, "grouped", axis=1) if len(blocks) > 1 else blocks[0]
        b.op("Gather", [grouped, b.const(order, np.int64, "order")], out=out_name, axis=1)
    graph = helper.make_graph(b.nodes, "fulcrum_preprocess", inputs,
                              [helper.make_tensor_value_info(out_name, onnx.TensorProto.FLOAT, ["N", width])],
                              initializer=b.initializers)
    opsets = {"": opset}
    if any(n.domain == "ai.onnx.ml" for n in b.nodes):
        opsets["ai.onnx.ml"] = ML_OPSET
    if any(n.domain == "com.microsoft" for n in b.nodes):
        opsets["com.microsoft"] = 1
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              producer_name="fulcrum")
    model.ir_version = _ir_version(opsets)
    return model


def _ir_version(opsets: Mapping[str, int]) -> int:
    from onnx import helper

    try:
        return int(helper.find_min_ir_version_for([helper.make_opsetid(d, v) for d, v in opsets.items()],
                                                  ignore_unknown=True))
    except TypeError:  # pragma: no cover - older onnx without ignore_unknown
        return int(helper.find_min_ir_version_for([helper.make_opsetid("", opsets.get("", DEFAULT_OPSET))]))


# ----------------------------------------------------------------------------- models


def _task_kind(task: Any) -> str:
    kind = task if isinstance(task, str) else getattr(task, "kind", None)
    if kind not in ("classification", "regression"):
        raise ConfigError(f"task must be 'classification' or 'regression' (or a TaskSpec); got {task!r}.")
    return str(kind)


def _torch_graph(adapter: Any, kind: str, n_features: int, opset: int) -> tuple[Any, str]:
    """The MLP's InferenceHead through torch.onnx.export, batch dimension dynamic."""
    import torch

    onnx = _onnx()
    module = adapter.torch_module()
    raw = "probabilities" if kind == "classification" else "value"
    dummy = torch.zeros(2, n_features, dtype=torch.float32)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript-based exporter (dynamo=False) warns that it is deprecated. It exports
        # this Linear/ReLU stack in ~0.1 s and silently, where the dynamo exporter takes ~2 s and
        # prints progress; the parity tests hold either way. Nothing here for users to act on.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            torch.onnx.export(
                module, (dummy,), buf, input_names=[FEATURES], output_names=[raw],
                dynamic_axes={FEATURES: {0: "N"}, raw: {0: "N"}}, opset_version=opset, dynamo=False,
                do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL,
            )
        except (TypeError, ValueError, NotImplementedError, ImportError, AttributeError):  # legacy exporter gone
            buf = io.BytesIO()
            program = torch.onnx.export(
                module, (dummy,), input_names=[FEATURES], output_names=[raw], opset_version=opset, dynamo=True,
                dynamic_shapes=({0: torch.export.Dim("N")},), verbose=False,
            )
            program.save(buf)  # type: ignore[union-attr]
    return onnx.load_from_string(buf.getvalue()), raw


def _linear_graph(adapter: Any, kind: str, n_features: int, opset: int) -> tuple[Any, str]:
    """LinearAdapter as MatMul + Add (+ Sigmoid / Softmax), in float64 like ``LinearAdapter.predict_output``.

    A hand graph rather than skl2onnx: the adapter keeps only coef_ / intercept_ (no
    estimator object to convert), and four nodes in double precision reproduce its
    arithmetic exactly, so outputs match to float32 rounding.
    """
    onnx = _onnx()
    from onnx import helper

    coef = np.asarray(adapter.coef_, dtype=np.float64)  # (K', D)
    icpt = np.asarray(adapter.intercept_, dtype=np.float64)  # (K',)
    if coef.ndim != 2 or coef.shape[1] != n_features:
        raise ConfigError(f"LinearAdapter coef_ has shape {coef.shape}; expected (K, {n_features}).")
    b = _Builder([FEATURES], prefix="lin_")
    x = b.op("Cast", [FEATURES], "x64", to=onnx.TensorProto.DOUBLE)
    z = b.op("Add", [b.op("MatMul", [x, b.const(coef.T, np.float64, "coef_t")]), b.const(icpt, np.float64, "intercept")], "z")
    if kind == "regression":
        raw = b.op("Cast", [z], "value_2d", to=onnx.TensorProto.FLOAT)  # [N, 1]
    elif coef.shape[0] == 1:  # binary logistic regression: sigmoid of one logit
        p1 = b.op("Sigmoid", [z], "p1")
        p = b.op("Concat", [b.op("Sub", [b.const(1.0, np.float64, "one"), p1], "p0"), p1], "p", axis=1)
        raw = b.op("Cast", [p], "proba", to=onnx.TensorProto.FLOAT)
    else:
        raw = b.op("Cast", [b.op("Softmax", [z], "p", axis=1)], "proba", to=onnx.TensorProto.FLOAT)
    graph = helper.make_graph(b.nodes, "fulcrum_linear",
                              [helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, ["N", n_features])],
                              [helper.make_tensor_value_info(raw, onnx.TensorProto.FLOAT, None)], initializer=b.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), raw


def _lightgbm_graph(adapter: Any, kind: str, n_features: int, opset: int) -> tuple[Any, str]:
    """LightGBM through onnxmltools (probabilities as a tensor: zipmap=False), upgraded to ``opset``."""
    import lightgbm as lgb
    from onnx import version_converter
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = adapter.booster_
    if booster is None:
        raise ConfigError("LightGBMAdapter is not fitted; nothing to export.")
    # exactly the trees the package stores (best iteration), as LightGBMAdapter.to_files writes them
    text = booster.model_to_string(num_iteration=booster.best_iteration or -1)
    booster = lgb.Booster(model_str=_float32_thresholds(text))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # onnxconverter plumbing; nothing to act on
        model = convert_lightgbm(booster, name="lightgbm", initial_types=[(FEATURES, FloatTensorType([None, n_features]))],
                                 target_opset=min(opset, _LGBM_MAX_OPSET), zipmap=False)
        if _opsets(model).get("", 0) != opset:
            model = version_converter.convert_version(model, opset)
    outs = [o.name for o in model.graph.output]
    raw = "probabilities" if kind == "classification" else outs[0]
    if raw not in outs:
        raise FormatError(f"onnxmltools produced outputs {outs}; expected 'probabilities' for a classifier.")
    return model, raw


def _float32_floor(t: float) -> float:
    """The largest float32 <= t: for every float32 x, ``x <= t`` iff ``x <= _float32_floor(t)``."""
    with np.errstate(over="ignore"):
        f = np.float32(t)
    if not np.isfinite(f):
        f = np.float32(np.finfo(np.float32).max if t > 0 else -np.finfo(np.float32).max)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def _float32_thresholds(model_text: str) -> str:
    """LightGBM model text with every numerical split threshold moved down to a float32.

    LightGBM compares features (float32 here, widened to double) with double thresholds,
    typically midpoints between two training values; ONNX tree ensembles store float32
    thresholds, and rounding a midpoint to the nearest float32 can land on one of those
    values and flip ``x <= t`` for it. Rounding every threshold *down* to a float32 gives
    the same decision for every float32 input, so the trees agree exactly.
    """
    lines = model_text.split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith("Tree="):
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j] and not lines[j].startswith("Tree="):
            j += 1
        block = {ln.split("=", 1)[0]: k for k, ln in enumerate(lines[i:j], start=i) if "=" in ln}
        if "threshold" in block:
            values = lines[block["threshold"]].split("=", 1)[1].split()
            kinds = lines[block["decision_type"]].split("=", 1)[1].split() if "decision_type" in block else ["0"] * len(values)
            new = [v if int(d) & 1 else repr(_float32_floor(float(v))) for v, d in zip(values, kinds)]  # bit 0: categorical
            lines[block["threshold"]] = "threshold=" + " ".join(new)
        i = j
    # tree_sizes (byte length of each tree block) no longer holds; LightGBM then parses sequentially
    return "\n".join(ln for ln in lines if not ln.startswith("tree_sizes="))


def _rename(graph: Any, mapping: Mapping[str, str]) -> None:
    """Rename edges everywhere in ``graph`` (no subgraphs are produced by these exporters)."""
    for node in graph.node:
        for i, n in enumerate(node.input):
            if n in mapping:
                node.input[i] = mapping[n]
        for i, n in enumerate(node.output):
            if n in mapping:
                node.output[i] = mapping[n]
    for seq in (graph.input, graph.output, graph.value_info):
        for vi in seq:
            if vi.name in mapping:
                vi.name = mapping[vi.name]
    for init in graph.initializer:
        if init.name in mapping:
            init.name = mapping[init.name]


def _edge_names(graph: Any) -> set[str]:
    names = {vi.name for vi in [*graph.input, *graph.output, *graph.value_info]} | {i.name for i in graph.initializer}
    for node in graph.node:
        names.update(n for n in node.input if n)
        names.update(n for n in node.output if n)
    return names


def _prefix_all(graph: Any, prefix: str, keep: Iterable[str] = ()) -> None:
    kept = set(keep)
    _rename(graph, {n: prefix + n for n in _edge_names(graph) if n not in kept})
    for i, node in enumerate(graph.node):
        node.name = f"{prefix}{node.name or node.op_type + str(i)}"


def _ensemble_graph(adapter: Any, kind: str, n_features: int, opset: int) -> tuple[Any, str]:
    """EnsembleAdapter: every member's graph side by side on the one ``features`` input, each member's
    internal names prefixed (``ens<i>_``), outputs combined as ``Sum(w_i * out_i)`` with constant float32
    weights (a member's own output type: float32 probabilities [N, K] or values reshaped to [N]).

    Each member reads the same float32 features, as the single-model graphs do (a linear member casts
    them to double inside its part, exactly like its own graph).
    """
    onnx = _onnx()
    from onnx import helper

    nodes: list[Any] = []
    initializers: list[Any] = []
    functions: list[Any] = []
    opsets: dict[str, int] = {"": opset}
    raws: list[tuple[str, float]] = []
    for i, (_, member, weight) in enumerate(adapter.members):
        family = getattr(member, "family", type(member).__name__)
        if family not in _MODEL_BUILDERS:
            raise ConfigError(f"Cannot export ensemble member family {family!r} to ONNX; supported: "
                              f"{', '.join(_MODEL_BUILDERS)}.")
        model, raw = _MODEL_BUILDERS[family](member, kind, n_features, opset)
        g = model.graph
        prefix = f"ens{i}_"  # ens<i>_ never begins another member's prefix: no edge name collides
        _prefix_all(g, prefix, keep=[FEATURES])
        nodes.extend(g.node)
        initializers.extend(g.initializer)
        functions.extend(model.functions)
        for domain, version in _opsets(model).items():
            opsets[domain] = max(opsets.get(domain, 0), version)
        raws.append((prefix + raw, float(weight)))
    used = {FEATURES} | {n for node in nodes for n in [*node.input, *node.output]} | {t.name for t in initializers}
    b = _Builder(used, prefix="ens_")
    parts = []
    for raw, weight in raws:
        if kind == "regression":
            raw = b.op("Reshape", [raw, b.const([-1], np.int64, "flat")], "value")  # [N, 1] or [N] -> [N]
        parts.append(b.op("Mul", [raw, b.const(weight, np.float32, "weight")], "weighted"))
    out = b.op("Sum", parts, "ensemble")
    graph = helper.make_graph([*nodes, *b.nodes], "fulcrum_ensemble",
                              [helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, ["N", n_features])],
                              [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)],
                              initializer=[*initializers, *b.initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())])
    model.functions.extend(functions)
    return model, out


def export_model(adapter: Any, task: Any, n_features: int, opset: int = DEFAULT_OPSET) -> Any:
    """The model alone: ``features`` float32 [N, D] -> ``probabilities`` float32 [N, K] and ``label``
    int64 [N] (classification) or ``value`` float32 [N] (regression).

    ``adapter``: a fitted MLPAdapter (torch.onnx.export of ``torch_module()``), LinearAdapter
    (a hand graph), LightGBMAdapter (onnxmltools) or EnsembleAdapter (its members' graphs and a
    weighted sum); ``task``: a TaskSpec or its kind.
    """
    onnx = _onnx()
    from onnx import helper

    kind = _task_kind(task)
    family = getattr(adapter, "family", type(adapter).__name__)
    builders = {**_MODEL_BUILDERS, "ensemble": _ensemble_graph}
    if family not in builders:
        raise ConfigError(f"Cannot export model family {family!r} to ONNX; supported: {', '.join(builders)}.")
    model, raw = builders[family](adapter, kind, int(n_features), opset)
    g = model.graph
    _prefix_all(g, "model_", keep=[FEATURES])
    raw = "model_" + raw
    del g.output[:]
    del g.value_info[:]  # converter shape annotations (e.g. onnxmltools' label [1]) are not the contract
    b = _Builder(_edge_names(g), prefix="out_")
    if kind == "classification":
        b.op("Identity", [raw], out="probabilities")
        b.op("ArgMax", ["probabilities"], out="label", axis=1, keepdims=0)
        k = _n_outputs(adapter)
        g.output.extend([helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["N", k]),
                         helper.make_tensor_value_info("label", onnx.TensorProto.INT64, ["N"])])
    else:
        b.op("Reshape", [raw, b.const([-1], np.int64, "flat")], out="value")
        g.output.extend([helper.make_tensor_value_info("value", onnx.TensorProto.FLOAT, ["N"])])
    g.node.extend(b.nodes)
    g.initializer.extend(b.initializers)
    del g.input[:]
    g.input.extend([helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, ["N", int(n_features)])])
    opsets = _opsets(model)
    opsets[""] = opset
    if "ai.onnx.ml" in opsets:  # onnxmltools writes 1; TreeEnsemble* read the same under 3 (LabelEncoder needs >= 2)
        opsets["ai.onnx.ml"] = max(opsets["ai.onnx.ml"], ML_OPSET)
    _set_opsets(model, opsets)
    model.ir_version = max(int(model.ir_version), _ir_version(opsets))
    g.name = f"fulcrum_{family}"
    onnx.checker.check_model(model)
    return model


_MODEL_BUILDERS = {"mlp": _torch_graph, "linear": _linear_graph, "lightgbm": _lightgbm_graph}


def _n_outputs(adapter: Any) -> int | None:
    task = getattr(adapter, "task", None)
    n = getattr(task, "n_classes", 0)
    return int(n) if n else None


def compose(pre: Any, model: Any) -> Any:
    """One graph: ``pre``'s raw inputs -> its ``features`` -> ``model`` -> the model's outputs.

    The model's internal names get a prefix so nothing collides with raw column names;
    the final inputs are exactly ``pre``'s inputs (the raw column names) and the outputs
    keep their names (``output:<name>`` if a raw column already has that name).
    """
    onnx = _onnx()
    from onnx import compose as onnx_compose

    pre, model = onnx.ModelProto.FromString(pre.SerializeToString()), onnx.ModelProto.FromString(model.SerializeToString())
    pre_names = _edge_names(pre.graph)
    raw_inputs = {i.name for i in pre.graph.input}
    prefix, k = "model/", 0
    while any(n.startswith(prefix) for n in pre_names):
        k += 1
        prefix = f"model{k}/"
    outputs = [o.name for o in model.graph.output]
    final = {o: (o if o not in pre_names else f"output:{o}") for o in outputs}
    if any(final[o] in pre_names for o in outputs):
        raise FormatError(f"Cannot name the graph outputs {outputs}: raw input columns already use those names.")
    model_input = model.graph.input[0].name
    _prefix_all(model.graph, prefix)
    _rename(model.graph, {prefix + o: final[o] for o in outputs})
    ir = max(int(pre.ir_version), int(model.ir_version))
    pre.ir_version = model.ir_version = ir
    opsets = {**_opsets(pre), **_opsets(model)}
    for d in set(_opsets(pre)) & set(_opsets(model)):
        if _opsets(pre)[d] != _opsets(model)[d]:
            raise FormatError(f"Cannot compose graphs with different {d or 'ai.onnx'} opsets: "
                              f"{_opsets(pre)[d]} vs {_opsets(model)[d]}; export both with the same opset.")
    merged = onnx_compose.merge_models(
        pre, model, io_map=[(pre.graph.output[0].name, prefix + model_input)],
        outputs=[final[o] for o in outputs], name="fulcrum", doc_string="Fulcrum model package: raw inputs -> outputs",
    )
    _set_opsets(merged, opsets)
    assert {i.name for i in merged.graph.input} == raw_inputs
    return merged


def export_package_graph(preprocess: Mapping[str, Any], adapter: Any, task: Any, n_features: int,
                         opset: int = DEFAULT_OPSET) -> bytes:
    """Serialized ``model.onnx`` for a package: ``compose(export_preprocess(...), export_model(...))``."""
    onnx = _onnx()
    full = compose(export_preprocess(preprocess, opset), export_model(adapter, task, n_features, opset))
    full.producer_name = "fulcrum"
    onnx.checker.check_model(full)
    return full.SerializeToString()


def package_onnx(preprocess: Mapping[str, Any], adapter: Any, task: Any, n_features: int,
                 frame: Any = None, reference: np.ndarray | None = None, *, split: str = "test") -> tuple[bytes, dict[str, Any]]:
    """``model.onnx`` bytes and its manifest section (``onnx``), with the parity measured on ``frame``.

    ``reference`` is the native adapter's output on ``frame`` (probabilities or values); the
    section records the largest absolute difference of ONNX Runtime's output from it.
    """
    data = export_package_graph(preprocess, adapter, task, n_features)
    section: dict[str, Any] = {**graph_signature(data), "file": "model.onnx", "parity": None}
    kinds = {s["name"]: s["kind"] for s in preprocess["columns"]}
    for entry in section["inputs"]:
        entry["kind"] = kinds.get(entry["name"])
    if frame is not None and reference is not None and len(frame):
        section["parity"] = measure_parity(data, preprocess, frame, reference, kind=_task_kind(task), split=split)
    return data, section


def measure_parity(model_bytes: bytes, preprocess: Mapping[str, Any], frame: Any, reference: np.ndarray, *,
                   kind: str, split: str = "test") -> dict[str, Any]:
    """Run the graph with ONNX Runtime on ``frame`` and compare to ``reference`` (the native outputs)."""
    import onnxruntime as ort

    from ._codec import InputEncoder

    from ...artifact import check_onnx_graph

    check_onnx_graph(model_bytes, "the exported graph")  # never a session over external data
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    feeds = InputEncoder(preprocess).encode_frame(frame)
    name = "probabilities" if kind == "classification" else "value"
    names = [o.name for o in sess.get_outputs()]
    out = sess.run([name if name in names else f"output:{name}"], feeds)[0]
    ref = np.asarray(reference, dtype=np.float64)
    diff = np.abs(out.astype(np.float64) - ref)
    return {
        "engine": f"onnxruntime {ort.__version__}",
        "reference": "native",
        "split": split,
        "rows": int(len(frame)),
        "output": name,
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "max_rel_diff": float((diff / np.maximum(np.abs(ref), 1e-12)).max()) if diff.size and kind == "regression" else None,
    }
