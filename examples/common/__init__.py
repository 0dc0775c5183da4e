"""What the examples share: :class:`Settings` and the component wiring in :func:`open_components`."""

from __future__ import annotations

from examples.common.components import Components, open_components
from examples.common.settings import Settings

__all__ = ["Components", "Settings", "open_components"]
