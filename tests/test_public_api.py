"""The public API is what it claims: every name in __all__ resolves, nothing private leaks."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import fulcrum

PACKAGES = ["fulcrum", "fulcrum.data", "fulcrum.artifact", "fulcrum.models", "fulcrum.training",
            "fulcrum.tasks", "fulcrum.runtime", "fulcrum.costs", "fulcrum.optimize", "fulcrum.serve"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve_and_are_public(name):
    mod = importlib.import_module(name)
    assert mod.__all__, name
    for attr in mod.__all__:
        assert getattr(mod, attr) is not None, f"{name}.{attr}"
        assert not attr.startswith("_") or attr == "__version__"


def test_top_level_verbs():
    assert callable(fulcrum.train) and callable(fulcrum.load) and callable(fulcrum.evaluate)
    assert issubclass(fulcrum.FulcrumError, Exception)


def test_import_is_lazy_and_cheap():
    # `import fulcrum` must not pull torch in: the CLI's start-up and `fulcrum --help` stay fast
    code = "import sys, fulcrum; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_error_tree_is_drawn_and_complete():
    from fulcrum import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.FulcrumError)
        assert name in errors.__doc__, f"{name} missing from the tree in errors.py's docstring"
