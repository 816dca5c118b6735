"""The ``fulcrum`` command line: one module per verb."""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
