"""One local Ray cluster (2 CPUs, no dashboard) for every test in tests/distributed, shut down after them.

Ray's start-up is the slow part (~10 s, more on a loaded machine), so the tests here share one cluster and
are marked ``ray``: ``pytest -m 'not ray'`` leaves them out; ``make test`` runs them.
"""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, dashboard_host="127.0.0.1", logging_level="warning",
             log_to_driver=False)
    try:
        yield ray
    finally:
        try:
            from ray import serve

            serve.shutdown()
        except Exception:  # serve never started
            pass
        ray.shutdown()


@pytest.fixture(scope="module")
def blobs_csv(tmp_path_factory):
    """400 rows, 3 numeric and 1 categorical input, a yes/no label that the inputs predict well."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    df = pd.DataFrame({"a": rng.normal(size=n) + y, "b": rng.normal(size=n) - 0.5 * y, "c": rng.normal(size=n),
                       "color": rng.choice(["red", "green", "blue"], n), "label": np.where(y == 1, "yes", "no")})
    path = tmp_path_factory.mktemp("data") / "blobs.csv"
    df.to_csv(path, index=False)
    return path
