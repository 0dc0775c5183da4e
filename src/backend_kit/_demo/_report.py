"""The demo's plain-text report: one header a part, one line a step."""

from __future__ import annotations

from typing import TextIO

__all__ = ["Report"]


class Report:
    """Collects what each demo part did and prints it as it happens."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.failures: list[str] = []

    def part(self, title: str, backend: str) -> None:
        """Start a part: ``title`` is the component, ``backend`` what it runs on."""
        self._out.write(f"\n{title} [{backend}]\n")
        self._out.flush()

    def step(self, text: str) -> None:
        """One thing the part did, in words a reader understands."""
        self._out.write(f"  - {text}\n")
        self._out.flush()

    def fail(self, title: str, reason: str) -> None:
        """A part failed: say so and remember it for the exit status."""
        self.failures.append(title)
        self._out.write(f"  ! {title} failed: {reason}\n")
        self._out.flush()
