"""The forecasting graph: the recent window and the time of the first forecast step -> the forecast.

Inputs   ``window`` float32 (N, L): the last L values before the first forecast step, oldest first
         ``start``  int64   (N, 1): the first forecast step's time, Unix epoch seconds (UTC)
         ``step``   int64   (N, 1): which step (1..H) the ``value`` output holds
         ``future`` float32 (N, H, C): known-future covariates at the H steps (only in a model trained with them)
Outputs  ``forecast``, ``forecast_lower``, ``forecast_upper`` float32 (N, H); ``value``, ``lower``, ``upper``
         float64 (N,): the forecast and its interval at ``step``

The calendar is computed inside: k = round((start - t0) / step length), Fourier terms of k mod season (a\nconstant table of P rows, gathered: the same bits as the native model's).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["build_graph", "OPSET"]

OPSET = 17


def build_graph(model: Any, spec: Any, t0: int, step_s: float, q: np.ndarray, n_cov: int = 0) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    L, H, P, J = spec.lags, spec.horizon, spec.season, spec.fourier
    nodes: list[Any] = []
    inits: list[Any] = []
    n = [0]

    def const(name: str, arr: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), f"fc/{name}"))
        return f"fc/{name}"

    def op(kind: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        n[0] += 1
        out = out or f"fc/t{n[0]}"
        nodes.append(helper.make_node(kind, inputs, [out], name=f"fc/{kind}{n[0]}", **attrs))
        return out

    i64 = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    # ---- window features
    last = op("Slice", ["window", const("l0", i64([L - 1])), const("l1", i64([L])), const("ax1", i64([1]))])
    head = op("Slice", ["window", const("z", i64([0])), const("lm1", i64([L - 1])), "fc/ax1"])
    tail = op("Slice", ["window", const("one", i64([1])), "fc/l1", "fc/ax1"])
    mad = op("ReduceMean", [op("Abs", [op("Sub", [tail, head])])], axes=[1], keepdims=1)
    s = op("Max", [mad, const("eps", np.float32([1e-6]))])
    x = op("Div", [op("Sub", [head, last]), s])
    # ---- step index of the first forecast step
    dt = op("Cast", [op("Sub", ["start", const("t0", i64([t0]))])], to=TensorProto.DOUBLE)
    k = op("Cast", [op("Round", [op("Div", [dt, const("step_s", np.float64([step_s]))])])], to=TensorProto.INT64)  # (N, 1)

    def fourier(kk: str) -> str:  # (N, M) int64 -> (N, M, 2J): a row of the phase table per step
        from ._models import fourier_table

        ph = op("Mod", [kk, const(f"P{n[0]}", i64([P]))], fmod=0)
        return op("Gather", [const(f"table{n[0]}", fourier_table(P, J)), ph], axis=0)

    def zs() -> str:  # (N, H, C) standardized known-future covariates
        cov = model.cov
        return op("Div", [op("Sub", ["future", const("zmu", cov.mu.astype(np.float32).reshape(1, 1, -1))]),
                          const("zsd", cov.sd.astype(np.float32).reshape(1, 1, -1))])

    def with_cov(z: str) -> str:  # + sum_c zs[:, h, c] gamma[c, h]
        if not n_cov or not getattr(getattr(model, "cov", None), "n", 0):
            return z
        g = const("gamma", model.gamma.T.astype(np.float32).reshape(1, H, -1))
        return op("Add", [z, op("ReduceSum", [op("Mul", [zs(), g]), const("ax2r", i64([2]))], keepdims=0)])

    extra_opsets: dict[str, int] = {}
    family = model.family
    if family == "seasonal_naive":
        forecast = op("Gather", ["window", const("idx", i64(model.index))], axis=1)
    elif family == "linear":
        feats = x
        if J:
            f = op("Reshape", [fourier(k), const("f2", i64([-1, 2 * J]))])
            feats = op("Concat", [x, f], axis=1)
        z = op("Add", [op("MatMul", [feats, const("W", model.coef.astype(np.float32))]),
                       const("b", model.intercept.astype(np.float32).reshape(1, H))])
        forecast = op("Add", [op("Mul", [with_cov(z), s]), last])
    elif family == "ar":
        z = op("Div", [op("Sub", ["window", const("mu", np.float32([model.mu]))]), const("sd", np.float32([model.sd]))])
        if J:
            z = op("Concat", [z, op("Reshape", [fourier(k), const("f2", i64([-1, 2 * J]))])], axis=1)
        r = op("Add", [op("MatMul", [z, const("W", model.coef.astype(np.float32))]),
                       const("b", model.intercept.astype(np.float32).reshape(1, H))])
        forecast = op("Add", [op("Mul", [with_cov(r), "fc/sd"]), "fc/mu"])
    elif family in ("ets", "drift", "arima", "combination"):  # a linear (affine) map window -> forecast
        forecast = op("MatMul", ["window", const("M", model.M.astype(np.float32))])
        b = getattr(model, "b", None)
        if b is not None and np.any(b != 0):
            forecast = op("Add", [forecast, const("bias", np.asarray(b, np.float32).reshape(1, H))])
    elif family == "mlp":
        feats = x
        if J:
            f = op("Reshape", [fourier(k), const("f2", i64([-1, 2 * J]))])
            feats = op("Concat", [x, f], axis=1)
        p = model.layers
        lin = op("Add", [op("MatMul", [feats, const("lin_w", p["lin_w"].astype(np.float32))]),
                         const("lin_b", p["lin_b"].astype(np.float32).reshape(1, H))])
        hid = op("Relu", [op("Add", [op("MatMul", [feats, const("hid_w", p["hid_w"].astype(np.float32))]),
                                     const("hid_b", p["hid_b"].astype(np.float32).reshape(1, -1))])])
        z = op("Add", [lin, op("MatMul", [hid, const("out_w", p["out_w"].astype(np.float32))])])
        forecast = op("Add", [op("Mul", [z, s]), last])
    elif family == "lightgbm":
        xs = op("Tile", [op("Unsqueeze", [x, "fc/ax1"]), const("rep", i64([1, H, 1]))])  # (N, H, L-1)
        hs = op("Add", [op("Mul", [op("Slice", [xs, "fc/z", "fc/one", const("ax2", i64([2]))]), const("zero", np.float32(0))]),
                        const("h", np.arange(1, H + 1, dtype=np.float32).reshape(1, H, 1))])
        parts = [xs, hs]
        if J:
            kk = op("Add", [k, const("ar", i64(np.arange(H)).reshape(1, H))])  # (N, H)
            parts.append(fourier(kk))
        C = model.cov.n if n_cov else 0
        if C:
            parts.append(zs())
        F = L - 1 + 1 + 2 * J + C
        op("Reshape", [op("Concat", parts, axis=2), const("rows", i64([-1, F]))], out="features")
        tree_model, tree_out = _lightgbm(model.booster, F)
        nodes.extend(tree_model.graph.node)
        inits.extend(tree_model.graph.initializer)
        for o in tree_model.opset_import:
            if o.domain:
                extra_opsets[o.domain] = max(int(o.version), 3 if o.domain == "ai.onnx.ml" else 1)
        z = op("Reshape", [tree_out, const("nh", i64([-1, H]))])
        forecast = op("Add", [op("Mul", [z, s]), last])
    else:  # pragma: no cover
        raise ValueError(family)
    forecast = op("Identity", [forecast], out="forecast")
    width = op("Mul", [s, const("q", np.asarray(q, np.float32).reshape(1, H))])
    lo = op("Sub", [forecast, width], out="forecast_lower")
    hi = op("Add", [forecast, width], out="forecast_upper")
    at = op("Sub", ["step", "fc/one"])
    flat = const("flat", i64([-1]))
    # as float64: the number a client gets in JSON is the number Python's predict() shows
    for src, name in ((forecast, "value"), (lo, "lower"), (hi, "upper")):
        op("Cast", [op("Reshape", [op("GatherElements", [src, at], axis=1), flat])], out=name, to=TensorProto.DOUBLE)
    graph = helper.make_graph(
        nodes, f"fulcrum_forecast_{family}",
        [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["N", L]),
         helper.make_tensor_value_info("start", TensorProto.INT64, ["N", 1]),
         helper.make_tensor_value_info("step", TensorProto.INT64, ["N", 1])]
        + ([helper.make_tensor_value_info("future", TensorProto.FLOAT, ["N", H, n_cov])] if n_cov else []),
        [helper.make_tensor_value_info("value", TensorProto.DOUBLE, ["N"]),
         helper.make_tensor_value_info("lower", TensorProto.DOUBLE, ["N"]),
         helper.make_tensor_value_info("upper", TensorProto.DOUBLE, ["N"]),
         helper.make_tensor_value_info("forecast", TensorProto.FLOAT, ["N", H]),
         helper.make_tensor_value_info("forecast_lower", TensorProto.FLOAT, ["N", H]),
         helper.make_tensor_value_info("forecast_upper", TensorProto.FLOAT, ["N", H])],
        initializer=inits)
    opsets = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, v) for d, v in extra_opsets.items()]
    m = helper.make_model(graph, opset_imports=opsets, producer_name="fulcrum")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def _lightgbm(booster: Any, n_features: int) -> tuple[Any, str]:
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = convert_lightgbm(booster, name="lightgbm", initial_types=[("features", FloatTensorType([None, n_features]))],
                                 target_opset=15, zipmap=False)
    return model, model.graph.output[0].name
