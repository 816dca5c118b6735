"""Fulcrum's exceptions: one tree, each error naming the problem and the fix.

::

    FulcrumError
     ├── ConfigError            bad or unknown config key/value            (400)
     ├── DataError              unreadable, empty or unusable data         (422)
     │    └── SchemaError       wrong/missing columns or types at predict  (422)
     ├── NotFittedError         predict/transform before fit               (409)
     ├── TrainingError          the training run itself failed             (500)
     ├── ArtifactError          a model package cannot be used             (500)
     │    ├── IntegrityError    checksum mismatch, missing/extra file      (500)
     │    └── FormatError       unknown format version, missing part       (500)
     ├── RegistryError          registry misuse                            (400)
     │    ├── InvalidNameError  name/alias that is unsafe or malformed     (400)
     │    └── NotFoundError     unknown model, version, alias or variant   (404)
     ├── ConstraintError        no variant meets the user's constraints    (422)
     └── ServeError             serving-time failure with its own status

Every error carries ``http_status`` so the server can answer with it (BentoML's
convention), and subclasses the matching built-in (``ValueError``,
``LookupError``) so callers that catch those keep working.
"""

from __future__ import annotations

__all__ = [
    "FulcrumError",
    "ConfigError",
    "DataError",
    "SchemaError",
    "NotFittedError",
    "TrainingError",
    "ArtifactError",
    "IntegrityError",
    "FormatError",
    "RegistryError",
    "InvalidNameError",
    "NotFoundError",
    "ConstraintError",
    "ServeError",
]


class FulcrumError(Exception):
    """Base of every error Fulcrum raises on purpose."""

    http_status: int = 500


class ConfigError(FulcrumError, ValueError):
    http_status = 400


class DataError(FulcrumError, ValueError):
    http_status = 422


class SchemaError(DataError):
    http_status = 422


class NotFittedError(FulcrumError, AttributeError):
    """Raised when an estimator is used before ``fit`` (scikit-learn's contract)."""

    http_status = 409


class TrainingError(FulcrumError, RuntimeError):
    http_status = 500


class ArtifactError(FulcrumError):
    http_status = 500


class IntegrityError(ArtifactError):
    http_status = 500


class FormatError(ArtifactError):
    http_status = 500


class RegistryError(FulcrumError):
    http_status = 400


class InvalidNameError(RegistryError, ValueError):
    http_status = 400


class NotFoundError(RegistryError, LookupError):
    http_status = 404


class ConstraintError(FulcrumError, ValueError):
    http_status = 422


class ServeError(FulcrumError):
    def __init__(self, message: str, http_status: int = 500, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.headers = headers or {}
