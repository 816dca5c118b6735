from __future__ import annotations

import math

import numpy as np
import pytest

from fulcrum.tasks import classification_metrics, regression_metrics


def test_classification_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    m = classification_metrics(y, p, 2)
    assert m["accuracy"] == pytest.approx(0.75)
    # balanced: recall class 0 = 1/2, class 1 = 2/2 -> 0.75
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    # f1 for class 1: precision 2/3, recall 1 -> 0.8
    assert m["f1"] == pytest.approx(0.8)
    # log loss: -(ln .9 + ln .4 + ln .8 + ln .7) / 4
    assert m["log_loss"] == pytest.approx(-(math.log(.9) + math.log(.4) + math.log(.8) + math.log(.7)) / 4)
    # roc auc: positives {.8,.7} vs negatives {.1,.6}: all 4 pairs ordered -> 1.0
    assert m["roc_auc"] == pytest.approx(1.0)
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]


def test_regression_by_hand():
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["r2"] == pytest.approx(1 - 4 / 2)


def test_undefined_metrics_are_none_not_warnings():
    m = regression_metrics(np.array([1.0]), np.array([1.5]))
    assert m["r2"] is None
    c = classification_metrics(np.array([1]), np.array([[0.2, 0.8]]), 2)
    assert c["roc_auc"] is None and c["accuracy"] == 1.0
