"""The web dashboard: models, a version, variants, costs, live serving and comparisons.

Read-only pages over JSON endpoints (see ``_app``), served by ``fulcrum ui`` and mounted at
``/ui`` by ``fulcrum serve``::

    >>> from fulcrum.ui import create_ui_app
    >>> app = create_ui_app(Registry(), auth=True)      # an ASGI app; mount it at /ui
"""

from __future__ import annotations

from ._app import PAGES, create_standalone_app, create_ui_app, is_open_path
from ._data import compare_detail, costs_detail, models_list, variants_detail, version_detail

__all__ = [
    "PAGES",
    "compare_detail",
    "costs_detail",
    "create_standalone_app",
    "create_ui_app",
    "is_open_path",
    "models_list",
    "variants_detail",
    "version_detail",
]
