"""Run every Python code block in the docs (and README) as a test, with Sybil.

A block that must not run (it needs a real server, or shows a shell command)
is preceded by ``<!-- skip: next -->`` in the Markdown source
(shell blocks are never run).
"""

from __future__ import annotations

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["*.md"],
).pytest()
