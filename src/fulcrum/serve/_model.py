"""One loaded model version as the server sees it: input schema (pydantic models built from its
task's request schema), request decoding into column arrays, batch computation, warm-up.

Inputs are the package's task's answer (``Task.request_schema(manifest)``: one
:class:`~fulcrum.tasks.InputField` per input, with its kind, v2 datatypes and limits); nothing here
asks which task it is. On the v2 protocol categorical, text and datetime inputs are BYTES, booleans
BOOL, numeric inputs FP32/FP64 (integer types are accepted and converted). For an input that is not
``required`` ``null`` means a missing value, which the model imputes; NaN and Infinity are rejected
(422). A task may offer a friendly shorthand (``Task.shorthand``): e.g. ``{"texts": ["a", "b"]}`` for
``{"records": [{"text": "a"}, {"text": "b"}]}``.

Cell values follow the one set of rules in ``fulcrum.data._coerce`` (the CLI's too): a numeric
cell is a JSON number or a plain decimal string (``"5.1"`` yes; ``"5_1"``, ``"0x10"``,
``"nan"``, ``true`` no); a boolean cell is true/false or one of the boolean words or 0/1; a
categorical cell is a string, number or boolean; text and datetime cells are strings. An
empty string is a missing value, like null. So is, in a numeric column, one of the column's
``na_tokens`` (the few texts it held in training, e.g. ``"?"`` or ``"n/a"``; see
``fulcrum.data._schema``), as in the CLI and the Python predictor. A required text input (a text
model's) takes a non-empty string without NUL of at most ``max_chars`` characters; anything else is
a 422 naming the limit (413 is only for a body over the server's byte limit or too many rows).
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
import pandas as pd
from pydantic import (
    AfterValidator,
    AliasChoices,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    create_model,
)

from ..data._coerce import BOOLEAN_RULE, NUMBER_TEXT_PATTERN, CellError, parse_bool, parse_number
from ..errors import ArtifactError, SchemaError, ServeError

__all__ = ["ServedModel", "column_datatypes"]

_NUMERIC_V2 = ("FP32", "FP64", "FP16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=False)
_EXAMPLE = {"text": "a short example text", "datetime": "2020-01-01"}


def column_datatypes(kind: str) -> tuple[str, ...]:
    """Default v2 datatypes for an input of ``kind`` when its field does not list them."""
    if kind == "numeric":
        return _NUMERIC_V2
    if kind == "boolean":
        return ("BOOL",)
    return ("BYTES",)


def _text_cell(max_chars: int) -> Any:
    """A required text: a non-empty string without NUL of at most ``max_chars`` characters."""

    def check(value: str) -> str:
        if "\x00" in value:
            raise ValueError("the text contains a NUL character (\\x00); remove it")
        if not value.strip():
            raise ValueError("the text is empty or only whitespace; send some text")
        if len(value) > max_chars:
            raise ValueError(f"the text has {len(value)} characters, more than this model's limit of {max_chars} "
                             "(max_chars); shorten it or split it into several texts")
        return value

    return Annotated[StrictStr, AfterValidator(check),
                     WithJsonSchema({"type": "string", "minLength": 1, "maxLength": max_chars,
                                     "description": f"non-empty UTF-8 text without NUL, at most {max_chars} characters"})]


def _number_cell(value: str | bool) -> float | None:
    """A numeric cell sent as a string (or a boolean, to refuse it by name) -> float | None."""
    try:
        x = parse_number(value)
    except CellError as exc:
        raise ValueError(str(exc)) from None
    if x != x:
        return None  # a blank string: missing, like null
    if not -_FLOAT32_MAX <= x <= _FLOAT32_MAX:
        raise ValueError(f"{value!r} is out of range: numbers must be finite and within +-{_FLOAT32_MAX:.4g} (float32)")
    return x


def _bool_cell(value: Any) -> bool | None:
    try:
        x = parse_bool(value)
    except CellError as exc:
        raise ValueError(str(exc)) from None
    return None if x != x else x == 1.0


# JSON numbers are validated natively (strict: no booleans, no strings), finite and within float32,
# the precision the graph computes in; strings (and booleans, refused by name) go to the shared parser.
_NUMBER = Annotated[float, Strict(), Field(ge=-_FLOAT32_MAX, le=_FLOAT32_MAX)]
_NUMBER_TEXT = Annotated[
    Union[StrictStr, StrictBool],
    AfterValidator(_number_cell),
    WithJsonSchema({"type": "string", "pattern": NUMBER_TEXT_PATTERN,
                    "description": "a plain decimal number as text; blank = missing"}),
]
_BOOLEAN = Annotated[
    Union[StrictBool, StrictInt, StrictFloat, StrictStr],
    AfterValidator(_bool_cell),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]},
                              {"type": "string", "description": BOOLEAN_RULE}]}),
]


def _number_or_token(tokens: list[str]) -> Any:
    """The numeric cell type of a column with ``na_tokens``: those texts (compared after stripping
    surrounding spaces, as :func:`fulcrum.data._schema.na_token_mask` does for the CLI) are missing
    values; every other cell follows the number rule."""
    wanted = frozenset(tokens)

    def cell(value: str | bool) -> float | None:
        if isinstance(value, str) and value.strip() in wanted:
            return None
        return _number_cell(value)

    return Optional[Union[_NUMBER, Annotated[
        Union[StrictStr, StrictBool],
        AfterValidator(cell),
        WithJsonSchema({"type": "string", "anyOf": [
            {"pattern": NUMBER_TEXT_PATTERN, "description": "a plain decimal number as text; blank = missing"},
            {"enum": sorted(wanted), "description": "read as a missing value (texts this column held in training)"},
        ]}),
    ]]]


def _friendly_type(kind: str, na_tokens: list[str] | None = None, *, required: bool = False,
                   limits: Any = None) -> Any:
    limits = limits or {}
    if kind == "text" and required:
        return _text_cell(int(limits.get("max_chars") or 10_000))
    if kind == "numeric":
        if na_tokens:
            return _number_or_token(na_tokens)
        return Optional[Union[_NUMBER, _NUMBER_TEXT]]
    if kind == "boolean":
        return Optional[_BOOLEAN]
    if kind == "categorical":  # labelled like the CLI's cells: 3 and 3.0 are "3", true is "true"
        return Optional[Union[StrictStr, StrictInt, StrictFloat, StrictBool]]
    return Optional[str]  # text, datetime


def _safe_title(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)


def validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic errors as JSON-safe dicts (no input echo: it may be large or hold NaN)."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]


class ServedModel:
    """A model version loaded for serving. Build with :meth:`load`; thread-safe for one batch at a time."""

    def __init__(self, package: Any, predictor: Any, *, monitor: Any = None, max_rows: int = 1024) -> None:
        m = package.manifest
        self.package = package
        self.predictor = predictor
        self.monitor = monitor
        self.name: str = str(m["name"])
        self.version: int = int(m["version"])
        self.version_str = str(self.version)
        self.ref = f"{self.name}@{self.version}"
        self.kind: str = m["task"]["kind"]
        self.target: str = m["task"]["target"]
        self.labels: list[Any] = list(m["task"].get("labels") or [])
        self.task = getattr(predictor, "task", None)
        if self.task is None:
            from ..tasks import get_task

            self.task = get_task(m)
        self.fields = list(self.task.request_schema(m))
        self.columns: list[dict[str, str]] = [{"name": f.name, "kind": f.kind} for f in self.fields]
        self.column_kind = {f.name: f.kind for f in self.fields}
        self.field_of_name = {f.name: f for f in self.fields}
        # a numeric column's na_tokens: texts read as missing values, as at training time and in the CLI
        self.na_tokens: dict[str, list[str]] = {
            f.name: [str(t) for t in f.limits["na_tokens"]] for f in self.fields
            if f.kind == "numeric" and (f.limits or {}).get("na_tokens")
        }
        self.shorthand = self.task.shorthand(m)
        from ..tasks._base import Task

        #: the task's own friendly request form (Task.expand_request), when it has one
        self._expand = None if type(self.task).expand_request is Task.expand_request else self.task.expand_request
        #: per-row interval ends the graph writes (kinds interval_lower / interval_upper): friendly route only
        self.intervals = [str(o["name"]) for o in (m.get("outputs") or []) if o.get("kind") in ("interval_lower", "interval_upper")
                          and str(o["name"]) in (getattr(predictor, "outputs", None) or [])]
        self.max_rows = max_rows
        outputs = m.get("outputs") or []
        label_out = next((o["name"] for o in outputs if o.get("kind") == "label"), self.target)
        self.label_output = str(label_out)
        self.classifier = any(o.get("kind") == "probabilities" for o in outputs) or (
            not outputs and self.kind == "classification")
        self.items = any(o.get("kind") == "items" for o in outputs)  # a recommender: top-k ids and scores
        self.text = not self.items and any(o.get("kind") == "text" for o in outputs)  # a transcriber: one string
        if self.classifier:
            self.output_names = [self.label_output, "probabilities"]
        elif self.items:
            self.output_names = [next(o["name"] for o in outputs if o.get("kind") == "items"), "scores"]
        elif self.text:
            self.output_names = [str(next(o["name"] for o in outputs if o.get("kind") == "text"))]
        else:
            value_out = next((o["name"] for o in outputs if o.get("kind") == "value"), self.target)
            self.output_names = [str(value_out)]
        ood = next((o for o in outputs if o.get("kind") == "ood_score"), None)
        self.graph_ood = ood is not None and "ood_score" in (getattr(predictor, "outputs", None) or [])
        thresholds = (ood or {}).get("thresholds") or {}
        self.graph_ood_threshold: float | None = (
            float(thresholds.get("p99", thresholds.get("p95"))) if self.graph_ood and thresholds else None)
        if self.graph_ood or monitor is not None:
            self.output_names.append("ood_score")
        #: per-row notes the graph writes (kind "note", e.g. which way a recommender answered): passed on by name
        self.notes = [str(o["name"]) for o in outputs if o.get("kind") == "note"
                      and str(o["name"]) in (getattr(predictor, "outputs", None) or [])]
        self.output_names.extend(self.notes)
        #: per-row quantities the graph reports for the monitor only (kind "monitored"): observed, not answered
        self.monitored = [str(k) for k in getattr(predictor, "monitored", None) or []]
        self.load_seconds = 0.0
        self.batcher: Any = None  # set by the model set
        # called with each batch's OOD scores (metrics), once per batch rather than per request
        self.on_scores: Any = None
        self._build_schemas()

    @property
    def ood_threshold(self) -> float:
        """The score at which a row counts as out of distribution: the monitor's, else the graph's (from the
        training data's validation scores), else 0.5."""
        if self.monitor is not None:
            return float(self.monitor.ood_threshold)
        return self.graph_ood_threshold if self.graph_ood_threshold is not None else 0.5

    # -- loading -------------------------------------------------------------

    @classmethod
    def load(cls, registry: Any, ref: str, *, monitor: bool = True, max_rows: int = 1024) -> ServedModel:
        """Load ``ref`` from the registry (checksums verified), build its Predictor and monitor, warm it up."""
        from ..runtime import Predictor

        start = time.perf_counter()
        package = registry.load(ref)
        predictor = Predictor(package)
        mon = None
        if monitor:
            mon = _make_monitor(package, predictor)
        served = cls(package, predictor, monitor=mon, max_rows=max_rows)
        served.warm_up()
        served.load_seconds = time.perf_counter() - start
        return served

    def sample_row(self) -> dict[str, Any]:
        """A typical row from the training profile (medians, most frequent categories)."""
        try:
            profile = self.package.read_json("profile.json").get("columns", {})
        except Exception:  # noqa: BLE001 - a package without a profile still warms up
            profile = {}
        row: dict[str, Any] = {}
        for f in self.fields:
            p = profile.get(f.name, {}) if isinstance(profile, dict) else {}
            if f.kind == "numeric":
                q = (p.get("quantiles") or {}).get("p50", p.get("mean", 0.0))
                row[f.name] = float(q) if isinstance(q, (int, float)) and math.isfinite(q) else 0.0
            elif f.kind == "boolean":
                row[f.name] = False
            elif f.kind == "categorical":
                top = p.get("top") or {}
                row[f.name] = next(iter(top), None) if isinstance(top, dict) else None
            elif f.required:  # a value the model cannot do without: the field's own example, or a typical one
                row[f.name] = f.example if getattr(f, "example", None) is not None else _EXAMPLE.get(f.kind, "example")
            else:
                row[f.name] = None
        return row

    def warm_up(self) -> None:
        """Run one inference end to end; raise ArtifactError if it fails or gives non-finite outputs."""
        cols = self.columns_from_records([self.sample_row()])
        try:
            (result,) = self.run_batch([(cols, 1)])
        except Exception as exc:
            raise ArtifactError(f"Warm-up inference of {self.ref} failed: {exc}") from exc
        if "text" in result:  # strings: one per row
            if len(result["text"]) != 1:
                raise ArtifactError(f"Warm-up inference of {self.ref} gave no text output.")
            return
        main = result.get("probabilities", result.get("value", result.get("scores")))
        if main is None or not np.all(np.isfinite(np.asarray(main, dtype=np.float64))):
            raise ArtifactError(f"Warm-up inference of {self.ref} gave non-finite or no outputs.")

    # -- schemas -------------------------------------------------------------

    def _build_schemas(self) -> None:
        title = _safe_title(f"{self.name}_v{self.version}")
        fields: dict[str, Any] = {}
        self._field_of: dict[str, str] = {}
        for i, f in enumerate(self.fields):
            field = f"c{i}"
            self._field_of[f.name] = field
            aliases = [str(a) for a in (f.limits or {}).get("aliases") or [] if a != f.name]
            extra = {"validation_alias": AliasChoices(f.name, *aliases)} if aliases else {}
            # an input the task declares optional (required=False) may be left out of a record: it reads as null
            fields[field] = (self._cell(f), Field(... if f.required else None, alias=f.name,
                                                   description=f.description or None, **extra))
        self.record_model = create_model(f"{title}_Record", __config__=_STRICT, **fields)  # type: ignore[call-overload]
        records_field = Field(..., min_length=1, json_schema_extra={"maxItems": self.max_rows})
        short: dict[str, Any] = {}
        if self.shorthand is not None:
            key, name = self.shorthand
            records_field = Field(None, min_length=1, json_schema_extra={"maxItems": self.max_rows})
            short[key] = (Optional[list[self._cell(self.field_of_name[name])]],  # type: ignore[misc]
                          Field(None, min_length=1, json_schema_extra={"maxItems": self.max_rows},
                                description=f"shorthand: one {name!r} per row, instead of records"))
        self.predict_model = create_model(
            f"{title}_PredictRequest",
            __config__=_STRICT,
            records=(list[self.record_model] if self.shorthand is None else Optional[list[self.record_model]],  # type: ignore[name-defined]
                     records_field),
            **short,
        )
        members = []
        for f in self.fields:
            kinds = tuple(f.v2) or column_datatypes(f.kind)
            scalar = self._cell(f)
            members.append(
                create_model(
                    _safe_title(f"{title}_Input_{f.name}"),
                    __config__=_STRICT,
                    name=(Literal[f.name], ...),  # type: ignore[valid-type]
                    datatype=(Literal[kinds], ...),  # type: ignore[valid-type]
                    shape=(list[int], Field(..., min_length=1, max_length=2)),
                    data=(Union[list[scalar], list[list[scalar]]], ...),  # type: ignore[valid-type]
                    parameters=(Optional[dict[str, Union[StrictBool, int, float, str]]], None),
                )
            )
        if len(members) == 1:
            item: Any = members[0]
        else:
            item = Annotated[Union[tuple(members)], Field(discriminator="name")]  # type: ignore[valid-type]
        requested = create_model(
            f"{title}_RequestedOutput",
            __config__=ConfigDict(extra="ignore", allow_inf_nan=False),
            name=(str, ...),
            parameters=(Optional[dict[str, Union[StrictBool, int, float, str]]], None),
        )
        self.infer_model = create_model(
            f"{title}_InferRequest",
            __config__=_STRICT,
            id=(Optional[str], Field(None, max_length=128)),
            parameters=(Optional[dict[str, Union[StrictBool, int, float, str]]], None),
            inputs=(list[item], Field(..., min_length=1, max_length=len(self.columns))),
            outputs=(Optional[list[requested]], None),  # type: ignore[valid-type]
        )

    def _cell(self, f: Any) -> Any:
        """The pydantic type of one cell of input field ``f`` (its kind, whether a value is required, its limits)."""
        return _friendly_type(f.kind, self.na_tokens.get(f.name), required=bool(f.required), limits=f.limits)

    # -- decoding ------------------------------------------------------------

    def parse_predict(self, body: bytes) -> tuple[dict[str, list[Any]], int]:
        """Friendly body -> (column value lists, rows). 422 on schema violations, 413 on rows."""
        if self._expand is not None:
            expanded = self._expanded(body)
            if expanded is not None:
                return expanded
        try:
            req = self.predict_model.model_validate_json(body)
        except ValidationError as exc:
            raise _invalid(exc) from None
        records = req.records  # type: ignore[attr-defined]
        if self.shorthand is not None:
            key, name = self.shorthand
            values = getattr(req, key)
            if (records is None) == (values is None):
                raise ServeError(f"Send either {{\"records\": [...]}} or {{\"{key}\": [...]}} (one {name!r} per row), "
                                 "exactly one of them.", 422)
            if values is not None:
                self._check_rows(len(values))
                rest = {c["name"]: [None] * len(values) for c in self.columns if c["name"] != name}  # optional inputs
                return {name: list(values), **rest}, len(values)
        n = len(records)
        self._check_rows(n)
        return {col: [getattr(r, f) for r in records] for col, f in self._field_of.items()}, n

    def _expanded(self, body: bytes) -> tuple[dict[str, list[Any]], int] | None:
        """The task's own request form (Task.expand_request), or None when the body is not one."""
        import json

        from ..errors import DataError

        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None  # the schema's own validation reports it
        if not isinstance(obj, dict):
            return None
        try:
            got = self._expand(self.package.manifest, obj)
        except (SchemaError, DataError) as exc:
            raise ServeError(str(exc), 422) from None
        if got is None:
            return None
        cols, n = got
        self._check_rows(n)
        return cols, n

    def columns_from_records(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        return {c["name"]: [r.get(c["name"]) for r in rows] for c in self.columns}

    def parse_infer(self, body: bytes) -> tuple[dict[str, list[Any]], int, Any]:
        """v2 body -> (column value lists, rows, parsed request)."""
        try:
            req = self.infer_model.model_validate_json(body)
        except ValidationError as exc:
            raise _invalid(exc) from None
        cols: dict[str, list[Any]] = {}
        n: int | None = None
        for inp in req.inputs:  # type: ignore[attr-defined]
            if inp.name in cols:
                raise ServeError(f"Input {inp.name!r} appears twice; send each column once.", 422)
            shape = list(inp.shape)
            if len(shape) == 2 and shape[1] != 1 or shape[0] < 0:
                raise ServeError(f"Input {inp.name!r}: shape must be [N] or [N, 1] (one column), got {shape}.", 422)
            data = inp.data
            if data and isinstance(data[0], list):
                if any(not isinstance(d, list) or len(d) != 1 for d in data):
                    raise ServeError(f"Input {inp.name!r}: nested data must be [[x], [y], ...] for shape [N, 1].", 422)
                data = [d[0] for d in data]
            if len(data) != shape[0]:
                raise ServeError(f"Input {inp.name!r}: shape says {shape[0]} rows but data has {len(data)} values.", 422)
            if n is None:
                n = shape[0]
            elif shape[0] != n:
                raise ServeError(f"Inputs disagree on the row count: {inp.name!r} has {shape[0]}, others {n}.", 422)
            kind = self.column_kind[inp.name]
            if kind == "numeric" and any(isinstance(v, bool) for v in data):
                raise ServeError(f"Input {inp.name!r} is numeric; got booleans.", 422)
            cols[inp.name] = data
        for f in self.fields:  # an optional input left out: null in every row
            if not f.required and f.name not in cols and n is not None:
                cols[f.name] = [None] * n
        missing = [c["name"] for c in self.columns if c["name"] not in cols]
        if missing:
            raise ServeError(
                f"Missing input(s) {missing}; model {self.ref} needs one input per column: "
                f"{[c['name'] for c in self.columns]}.",
                422,
            )
        assert n is not None
        if n == 0:
            raise ServeError("Inputs hold no rows; send at least one.", 422)
        self._check_rows(n)
        if req.outputs:  # type: ignore[attr-defined]
            unknown = [o.name for o in req.outputs if o.name not in self.output_names]  # type: ignore[attr-defined]
            if unknown:
                raise ServeError(f"Unknown output(s) {unknown}; model {self.ref} has {self.output_names}.", 422)
        return cols, n, req

    def _check_rows(self, n: int) -> None:
        if n > self.max_rows:
            raise ServeError(
                f"Request has {n} rows; this server takes at most {self.max_rows} per request. Split it.", 413
            )

    # -- computing -----------------------------------------------------------

    def arrays(self, cols: dict[str, list[Any]]) -> dict[str, np.ndarray]:
        """Column value lists -> arrays: float64 for numeric (None -> NaN, imputed), object otherwise."""
        out: dict[str, np.ndarray] = {}
        for c in self.columns:
            values = cols[c["name"]]
            out[c["name"]] = np.array(values, dtype=np.float64 if c["kind"] == "numeric" else object)
        for name in cols.keys() - out.keys():  # a task's extra columns (Task.expand_request): one object per row
            extra = np.empty(len(cols[name]), dtype=object)
            for i, v in enumerate(cols[name]):
                extra[i] = v
            out[name] = extra
        return out

    def run_batch(self, payloads: list[tuple[dict[str, list[Any]], int]]) -> list[dict[str, np.ndarray]]:
        """Join the requests' columns, predict once, split the outputs back per request."""
        if len(payloads) == 1:
            lists, total = payloads[0]
        else:
            lists = {}
            names = [c["name"] for c in self.columns]
            names += sorted({k for p in payloads for k in p[0]} - set(names))  # a task's extra columns
            for name in names:
                joined: list[Any] = []
                for p in payloads:
                    joined.extend(p[0].get(name) or [None] * p[1])
                lists[name] = joined
            total = sum(p[1] for p in payloads)
        cols = self.arrays(lists)
        outputs = self._predict(cols)
        graph_scores = outputs.pop("ood_score", None)
        if graph_scores is not None:  # the graph's own out-of-distribution score (e.g. embedding distance)
            outputs["ood"] = np.asarray(graph_scores, dtype=np.float64).reshape(-1)
        watched = {k: outputs.pop(k) for k in self.monitored if k in outputs}
        if self.monitor is not None:
            try:  # one pass: observe scores the rows (unless the graph did) and adds them to the window
                scores = np.asarray(self.monitor.observe({**cols, **watched} if watched else cols,
                                                         scores=outputs.get("ood")), dtype=np.float64).reshape(-1)
                if scores.shape[0] == total:
                    outputs["ood"] = scores
                    if self.on_scores is not None:
                        self.on_scores(scores)
            except Exception:  # noqa: BLE001 - a monitor failure never fails a prediction
                pass
        if len(payloads) == 1:
            return [outputs]
        results: list[dict[str, np.ndarray]] = []
        start = 0
        for _, n in payloads:
            results.append({k: v[start : start + n] for k, v in outputs.items()})
            start += n
        return results

    def _predict(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pred = self.predictor
        try:
            if hasattr(pred, "predict_columns"):  # ONNX Runtime path: column arrays straight in
                out = pred.predict_columns(cols)
                extra = {"ood_score": np.asarray(out["ood_score"])} if "ood_score" in out else {}
                extra.update({k: np.asarray(out[k]) for k in self.notes if k in out})
                extra.update({k: np.asarray(out[k], dtype=np.float64).reshape(-1) for k in self.monitored if k in out})
                extra.update({k: np.asarray(out[k], dtype=np.float64).reshape(-1) for k in self.intervals if k in out})
                if "probabilities" in out:
                    return {"probabilities": np.asarray(out["probabilities"]), **extra}
                if self.items:  # (N, k) ids and scores
                    return {"items": np.asarray(out[self.target]), "scores": np.asarray(out["scores"]), **extra}
                if self.text:  # (N,) strings
                    return {"text": np.asarray(out[self.target], dtype=object).reshape(-1), **extra}
                value = out.get("value", out.get(self.target))
                if value is not None:
                    return {"value": np.asarray(value, dtype=np.float64).reshape(-1), **extra}
            raw = np.asarray(pred.predict_output(pd.DataFrame(cols, copy=False)))
        except SchemaError as exc:
            raise ServeError(str(exc), 422) from exc
        if self.classifier:
            return {"probabilities": raw}
        return {"value": raw.reshape(-1)}


def _invalid(exc: ValidationError) -> ServeError:
    err = ServeError("Request does not match the model's input schema.", 422)
    err.detail = validation_detail(exc)  # type: ignore[attr-defined]
    return err


def _make_monitor(package: Any, predictor: Any = None) -> Any:
    """The Monitor for this package, or None when the profile is unavailable. When the graph scores each
    input itself (an ``ood_score`` output), the monitor keeps those scores and the manifest's threshold."""
    try:
        from ._monitor import Monitor  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        graph_scores = "ood_score" in (getattr(predictor, "outputs", None) or [])
        return Monitor.from_package(package, graph_scores=graph_scores)
    except Exception:  # noqa: BLE001 - serving without a monitor beats not serving
        return None
