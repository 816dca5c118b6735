"""Time-series forecasting: a time column and a numeric target (optionally a series id) -> the next H steps.

::

    from fulcrum.tasks.forecast import ForecastTask
    task = ForecastTask()
    task.detect(frame, "volume")                      # "column 'date' holds dates and 'volume' is numeric: ..."
    trained = task.fit(frame, {"target": "volume"})   # seasonal-naive / ridge / LightGBM, by backtest MASE
    trained.files["model.onnx"]                       # window (N, L), start, step (N, 1) -> value, lower, upper (N,), forecast (N, H)

Modules: ``_data`` (time column, frequency, regular grid, built-in series), ``_config`` (ForecastConfig),
``_models`` (features, models, metrics, conformal quantiles), ``_graph`` (the ONNX graph), ``_fit`` (the run:
backtest, selection, intervals, export), ``_codec`` (rows -> feeds from the stored history), ``_task``.
"""

from __future__ import annotations

from ._config import ForecastConfig
from ._task import ForecastTask

__all__ = ["ForecastTask", "ForecastConfig"]
