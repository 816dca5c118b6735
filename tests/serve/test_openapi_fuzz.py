"""Schemathesis against the live server's OpenAPI document: generated requests (valid and
invalid) for every documented operation never produce a 5xx. Bounded: a few examples each."""

from __future__ import annotations

import shutil

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from .conftest import LiveServer  # noqa: E402


@pytest.fixture(scope="module")
def live_url(template_registry, tmp_path_factory):
    from fulcrum.artifact import Registry
    from fulcrum.serve import ServeSettings, create_app

    root = tmp_path_factory.mktemp("fuzz") / "registry"
    shutil.copytree(template_registry, root)
    app = create_app(["penguins@production", "iris"], ServeSettings(access_log=False, poll_interval_s=0.5),
                     registry=Registry(root))
    srv = LiveServer(app).start()
    yield srv.url
    srv.stop()


@pytest.fixture(scope="module")
def api_schema(live_url):
    return schemathesis.openapi.from_url(f"{live_url}/openapi.json")


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_server_errors(api_schema, live_url, mode):
    # schemathesis' own pytest plugin (from_fixture) does not run under pytest 9; drive it directly.
    from hypothesis import given

    ops = [result.ok() for result in api_schema.get_all_operations()]
    assert any(op.path == "/v1/models/penguins/predict" for op in ops)
    for op in ops:
        strategy = op.as_strategy(schemathesis.GenerationMode(mode))

        @given(case=strategy)
        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case):
            case.call_and_validate(base_url=live_url, checks=[not_a_server_error], timeout=30)

        try:
            check()
        except Unsatisfiable:  # nothing invalid can be generated for this operation (no parameters, no body)
            assert mode == "negative"
