"""ForecastTask: time-series forecasting behind the task contract (tasks/_base.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import pandas as pd

from .._base import InputCodec, InputField, ReadJson, Task, TaskExample, Trained, VariantKind
from ._config import ForecastConfig

__all__ = ["ForecastTask"]


class ForecastTask(Task):
    """Forecasting: a time column and a numeric target (optionally a series id) -> the next H steps.

    Models: ``seasonal_naive`` (the baseline), ``ets`` (exponential smoothing as a linear map of the window),
    ``ar`` (ridge on the window's levels + calendar), ``linear`` (ridge on the window relative to its last value +
    calendar), ``lightgbm`` (one global tree ensemble over (window, step) rows), ``mlp`` (a small network trained by
    the shared Trainer), ``drift``, ``arima``, and ``combination`` (the mean of the statistical models the
    validation folds cannot separate); direct multi-step, chosen by rolling-origin backtest MASE, with split-conformal intervals
    from every backtest origin. ``model.onnx`` takes the window, the first step's time (and the known-future
    covariates at the H steps when the model has them).
    """

    name: ClassVar[str] = "forecast"
    summary: ClassVar[str] = ("time-series forecasting: seasonal-naive, exponential smoothing, ridge AR, LightGBM and a "
                              "small MLP on lag windows + calendar (+ known-future covariates), chosen by rolling-origin "
                              "backtest, conformal intervals")
    kinds: ClassVar[tuple[str, ...]] = ("regression",)
    config_class: ClassVar[type | None] = ForecastConfig

    def example(self) -> TaskExample:
        """statsmodels' Nile flows (100 years) with the ridge model: trains in about a second. ``requests``: the
        5 years after the series, the times the package forecasts."""
        from ...data import load_builtin

        frame = load_builtin("nile")
        requests = pd.DataFrame({"date": [f"{y}-01-01" for y in range(1971, 1976)]})
        return TaskExample(frame, "volume", {"model": "linear"}, "builtin:nile (100 years), ridge model",
                           requests=requests)

    def detect(self, frame: pd.DataFrame, target: str | None) -> str | None:
        from ._data import datetime_column

        if target is None or target not in frame.columns or not pd.api.types.is_numeric_dtype(frame[target]):
            return None
        col = datetime_column(frame, target)
        if col is None:
            return None
        others = [c for c in frame.columns if c not in (target, col)]
        if len(others) > 1:
            return None  # a table with a date among many features: the tabular task
        if others and pd.api.types.is_numeric_dtype(frame[others[0]]) and frame[others[0]].nunique() > len(frame) // 2:
            return None
        return f"column {col!r} holds dates and {target!r} is numeric: a time series"

    def fit(self, frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
            checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
        from ._fit import fit_forecast

        return fit_forecast(frame, config, source=source, callbacks=callbacks, checkpoint_dir=checkpoint_dir, log=log)

    def splits(self, package: Any, data: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(the table, nothing, the held-out backtest steps: the last ``test_folds`` x H stored times with their
        values). The package forecasts a stored time from its fold's origin, so a variant is scored on the same
        backtest steps as the package (by the refit model, which has seen them: a comparison, not a fresh test)."""
        from .._base import read_source

        m = package.manifest
        frame, _ = read_source(m, data)
        hist = package.read_json("history.json")
        t = m["task"]
        n_test = int((m.get("config") or {}).get("test_folds", 2)) * int(hist["horizon"])
        rows = []
        for s, h in hist["series"].items():
            times = pd.date_range(end=pd.Timestamp(h["end"]), periods=len(h["values"]), freq=hist["freq"])
            covs = h.get("covariates") or [[]] * len(h["values"])
            for when, v, z in list(zip(times, h["values"], covs))[-n_test:]:
                rows.append({t["timestamp"]: when.isoformat(), **({t["series_column"]: s} if t.get("series_column") else {}),
                             **dict(zip(hist.get("covariates") or [], z)), t["target"]: float(v)})
        return frame, frame.iloc[:0], pd.DataFrame(rows)

    def evaluate(self, manifest: Mapping[str, Any], truth: Sequence[Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
        """MASE (over the package's mean in-sample seasonal-naive MAE), MAE, RMSE, sMAPE of ``value``."""
        import numpy as np

        from ._models import metrics

        y = np.asarray(truth, np.float64).reshape(-1, 1)
        f = np.asarray(outputs["value"], np.float64).reshape(-1, 1)
        if not len(y):
            return {"mase": None, "mae": None, "rmse": None, "smape": None, "n": 0}
        scale = np.full_like(y, float(manifest["model"].get("mase_scale") or 1.0))
        return {**metrics(y, f, scale), "n": int(len(y))}

    # ------------------------------------------------------------------ inference side

    def input_codec(self, manifest: Mapping[str, Any], read_json: ReadJson) -> InputCodec:
        from ._codec import ForecastCodec

        return ForecastCodec(manifest, read_json("history.json"))

    def request_schema(self, manifest: Mapping[str, Any]) -> list[InputField]:
        t = manifest["task"]
        fields = [InputField(t["timestamp"], "datetime", ("BYTES",), description=(
            f"the time to forecast: one of the {t['horizon']} steps ({t['freq']}) after the stored history"),
            limits={"horizon": t["horizon"]}, example=t.get("next"))]
        if t.get("series_column"):
            fields.append(InputField(t["series_column"], "categorical", ("BYTES",), description="the series to forecast"))
        for c in t.get("covariates") or []:
            fields.append(InputField(c, "numeric", ("FP64", "FP32", "INT64", "INT32"), description=(
                "known-future covariate: its value at the time to forecast (required)")))
        return fields

    def expand_request(self, manifest: Mapping[str, Any], body: Mapping[str, Any]) -> tuple[dict[str, list[Any]], int] | None:
        """``{"history": [...], "horizon": H}`` (optionally ``"end"`` or ``"times"``) on the friendly route: the
        forecast of the next H steps from the request's own history, with its prediction intervals."""
        if "history" not in body:
            return None
        from ._codec import expand_history

        return expand_history(manifest, body)

    def shorthand(self, manifest: Mapping[str, Any]) -> tuple[str, str] | None:
        if manifest["task"].get("series_column"):
            return None
        return ("times", manifest["task"]["timestamp"])

    def variant_kinds(self, manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
        fam = manifest["model"]["family"]
        why = {"int8-dynamic": f"the {fam} graph is a few small ops (a {manifest['task']['lags']}-value window, one "
                               "MatMul or a tree ensemble); its time is ONNX Runtime's call overhead, so int8 saves "
                               "nothing and costs accuracy",
               "int8-static": "as int8-dynamic: nothing to gain on so small a graph",
               "pruned": "nothing worth pruning: the one neural candidate (mlp) has a single 32-unit layer",
               "distilled": "the models are already small; a student would be no smaller or faster",
               "trees": "for the tabular task's tree ensembles", "shallow": "for the tabular task's tree ensembles"}
        return [VariantKind("onnx-fp32")], why

    def flops_per_prediction(self, manifest: Mapping[str, Any]) -> tuple[int, str]:
        t, m = manifest["task"], manifest["model"]
        L, H = int(t["lags"]), int(t["horizon"])
        J = int((m.get("spec") or {}).get("fourier", 0))
        if m["family"] == "linear":
            return int(2 * (L - 1 + 2 * J) * H + 4 * L + 4 * H), "window scale + 2 x features x horizon MatMul + intervals"
        if m["family"] == "lightgbm":
            d = m.get("describe") or {}
            import math

            depth = math.ceil(math.log2(max(int(d.get("leaves", 15)), 2)))
            return int(int(d.get("trees", 300)) * depth * H + 4 * L + 4 * H), "trees x depth comparisons x horizon"
        if m["family"] == "ar":
            return int(2 * (L + 2 * J) * H + 2 * L + 4 * H), "standardize the window + features x horizon MatMul + intervals"
        if m["family"] in ("ets", "drift"):
            return int(2 * L * H + 4 * L + 4 * H), "window x (L, H) smoothing map + intervals"
        if m["family"] == "arima":
            return int(2 * L * H + H + 4 * L + 4 * H), "window x (L, H) ARIMA map + constant + intervals"
        if m["family"] == "combination":
            return int(2 * L * H + H + 4 * L + 4 * H), "window x (L, H) weighted mean of the members' maps + constant + intervals"
        if m["family"] == "mlp":
            F, hid = L - 1 + 2 * J, int((m.get("describe") or {}).get("hidden", 32))
            return int(2 * (F * H + F * hid + hid * H) + 4 * L + 4 * H), "linear skip + one ReLU layer + intervals"
        return int(H + 4 * L), "a gather of the last season + window scale"
