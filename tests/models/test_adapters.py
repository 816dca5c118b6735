from __future__ import annotations

import numpy as np
import pytest

from fulcrum.config import TrainConfig
from fulcrum.errors import ConfigError, NotFittedError
from fulcrum.models import TRAINABLE, TaskSpec, adapter_class

CFG = TrainConfig(epochs=30, lr=1e-2, hidden_sizes=(16,), progress=False, device="cpu", n_estimators=50)


def data(kind, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    if kind == "classification":
        y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
    else:
        y = 3 * X[:, 0] - 2 * X[:, 1] + 0.1 * rng.normal(size=300)
    return X[:240], y[:240], X[240:], y[240:]


@pytest.mark.parametrize("family", sorted(TRAINABLE))
@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_fit_predict_roundtrip(family, kind):
    X, y, Xv, yv = data(kind)
    task = TaskSpec(kind, n_classes=3 if kind == "classification" else 0)
    ad = adapter_class(family)(task, CFG).fit(X, y, Xv, yv)
    out = ad.predict_output(Xv)
    if kind == "classification":
        assert out.shape == (60, 3)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
        assert (out.argmax(1) == yv).mean() > 0.75
    else:
        assert out.shape == (60,)
        assert np.corrcoef(out, yv)[0, 1] > 0.9
    meta, files = ad.to_files()
    assert all(isinstance(v, bytes) for v in files.values())
    back = adapter_class(family).from_files(task, meta, files.__getitem__)
    np.testing.assert_allclose(back.predict_output(Xv), out, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("family", sorted(TRAINABLE))
def test_predict_before_fit_says_call_fit(family):
    ad = adapter_class(family)(TaskSpec("regression"), CFG)
    with pytest.raises(NotFittedError, match="call fit"):
        ad.predict_output(np.zeros((1, 4), np.float32))


def test_unknown_family():
    with pytest.raises(ConfigError, match="Unknown model 'svm'"):
        adapter_class("svm")


def test_binary_classification_has_two_columns():
    X, y, Xv, yv = data("classification")
    y, yv = (y > 0).astype(np.int64), (yv > 0).astype(np.int64)
    for fam in TRAINABLE:
        out = adapter_class(fam)(TaskSpec("classification", 2), CFG).fit(X, y, Xv, yv).predict_output(Xv)
        assert out.shape == (60, 2)
