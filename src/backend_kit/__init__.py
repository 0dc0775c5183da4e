"""backend-kit: typed, framework-agnostic backend building blocks.

Importing this package is cheap and imports no optional dependency: every
component lives in its own subpackage (``backend_kit.cache``,
``backend_kit.security``, ...) and every backend that needs an extra in its own
module (``backend_kit.cache.redis``), imported only by the user.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from backend_kit._redact import redact_url
from backend_kit.errors import BackendKitError, ConfigurationError, MissingDependencyError

try:
    __version__ = _version("backend-kit")
except (
    _PackageNotFoundError
):  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "BackendKitError",
    "ConfigurationError",
    "MissingDependencyError",
    "__version__",
    "redact_url",
]
