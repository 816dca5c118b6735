"""The forecasting task's options: a typed config that refuses unknown keys."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ...config import TaskConfig, _coerce_and_check
from ...errors import ConfigError

__all__ = ["ForecastConfig", "FORECAST_MODELS"]

FORECAST_MODELS = ("auto", "seasonal_naive", "drift", "ets", "arima", "ar", "linear", "lightgbm", "mlp")


@dataclasses.dataclass
class ForecastConfig(TaskConfig):
    """Options of a forecasting run.

    ``timestamp`` / ``series``: the time column and the optional series-id column (None: inferred; a
    table with no id column is one series). ``covariates``: known-future covariate columns (None: every other
    numeric column; [] none): the ``ar``, ``linear`` and ``lightgbm`` models use their values at each forecast step,
    and a request must carry them for the times it forecasts. ``freq`` (a pandas alias such as ``MS``, ``W-SAT``, ``h``),
    ``season`` (steps per seasonal cycle), ``horizon`` (steps forecast) and ``lags`` (the window the model
    reads) are inferred when None. ``folds``: rolling-origin backtest folds, each ``horizon`` steps apart;
    the last ``test_folds`` of them are held out (reported metrics and interval coverage), the others choose
    the model and calibrate the intervals. ``coverage``: the nominal coverage of the prediction intervals.
    ``model``: ``auto`` or one family; ``auto`` ties the candidates whose per-fold validation MASE is not worse
    than the best candidate's beyond noise (``_fit.select``: paired fold differences, Student's t standard
    errors for the number of validation folds, at least 2) and keeps ``arima`` when it is tied, else the weighted
    mean of the tied statistical models (drift, ets) when both tie (``combination``), else the simplest tied
    candidate.
    ``min_windows_ml``: an optional floor (default 0: none): ``lightgbm`` and ``mlp`` are candidates only when the
    first backtest fold trains on at least this many windows.
    """

    MODELS = FORECAST_MODELS
    WRONG_MODEL = "model={model!r} is not a forecasting model; choose one of {models}."
    WRONG_TYPE = "A forecast config is a ForecastConfig or dict, not {type}."

    target: str | None = None
    timestamp: str | None = None
    series: str | None = None
    covariates: list[str] | None = None
    model: Literal["auto", "seasonal_naive", "drift", "ets", "arima", "ar", "linear", "lightgbm", "mlp"] = "auto"
    freq: str | None = None
    season: int | None = None
    horizon: int | None = None
    lags: int | None = None
    folds: int = 6
    test_folds: int = 2
    coverage: float = 0.9
    min_windows_ml: int = 0
    ridge: float = 1.0
    lgbm_trees: int = 300
    lgbm_leaves: int = 15
    lgbm_lr: float = 0.05
    seed: int = 0
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = True
    measure_inference: bool = True

    def __post_init__(self) -> None:
        _coerce_and_check(self)
        for key in ("season", "horizon", "lags"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ConfigError(f"{key} must be >= 1 (steps), got {v}.")
        if self.lags is not None and self.lags < 2:
            raise ConfigError(f"lags must be >= 2 (the window the model reads), got {self.lags}.")
        if self.folds < 2 or not 1 <= self.test_folds < self.folds:
            raise ConfigError(f"folds must be >= 2 and test_folds between 1 and folds - 1; got folds={self.folds}, "
                              f"test_folds={self.test_folds}.")
        if not 0.5 <= self.coverage < 1:
            raise ConfigError(f"coverage is the intervals' nominal coverage, between 0.5 and 1 (e.g. 0.9); got {self.coverage}.")
        if self.ridge < 0 or self.lgbm_trees < 1 or self.lgbm_leaves < 2 or self.lgbm_lr <= 0:
            raise ConfigError("ridge >= 0, lgbm_trees >= 1, lgbm_leaves >= 2 and lgbm_lr > 0, please.")
