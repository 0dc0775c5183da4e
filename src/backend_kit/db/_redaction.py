"""Make SQL and bound parameters safe to log: literals out, values masked.

Pure Python (no SQLAlchemy) so it is cheap to import and easy to test. It runs
only on the slow path — when a query has already exceeded the threshold — so
clarity wins over speed here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_SENSITIVE_NAMES",
    "MASK",
    "describe_parameters",
    "normalize_statement",
]

MASK = "***"

# Parameter names whose values stay masked even when values are revealed.
DEFAULT_SENSITIVE_NAMES = re.compile(
    r"pass(word|wd|phrase)?|pwd|secret|token|api_?key|apikey|access_?key|private_?key"
    r"|auth|credential|session|cookie|salt|hash|signature|otp|ssn|card",
    re.IGNORECASE,
)

# Values that look like a secret whatever their parameter is called: a JWT,
# a password hash in modular crypt format, a PEM block.
_SECRET_LOOKING_VALUE = re.compile(
    r"^(eyJ[\w-]+\.[\w-]+\.|\$(argon2|2[abxy]?\$|pbkdf2|scrypt|[156]\$)|-----BEGIN )"
)

# One pass over the statement. Identifiers and placeholders are matched so
# that digits inside them are left alone; literals and comments are replaced.
_SQL_TOKENS = re.compile(
    r"""
      (?P<dollar>\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$)   # $$ ... $$ / $tag$ ... $tag$
    | (?P<estring>[Ee]'(?:[^'\\]|\\.|'')*')                   # E'...' with backslash escapes
    | (?P<string>[BbXxNn]?'(?:[^']|'')*')                     # '...', B'...', X'...', N'...'
    | (?P<open_string>'.*$)                                   # an unterminated (cut) literal
    | (?P<line_comment>--[^\n]*)
    | (?P<block_comment>/\*.*?\*/)
    | (?P<quoted_ident>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])      # identifiers stay as they are
    | (?P<placeholder>%\(\w+\)s|%s|\$\d+|:\w+|\?)              # bound parameters stay too
    | (?P<word>[A-Za-z_][\w$]*)                               # keywords, names, param_1
    | (?P<number>(?<![\w.])\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|(?<![\w.])\.\d+(?:[eE][-+]?\d+)?)
    """,
    re.VERBOSE | re.DOTALL,
)

_WHITESPACE = re.compile(r"\s+")
# "VALUES (...), (...), (...)" from executemany/insertmanyvalues: keep the first tuple.
_TUPLE = r"\((?:[^()]|%\(\w+\)s)*\)"  # a parenthesized row; pyformat placeholders inside
_REPEATED_VALUES = re.compile(rf"(VALUES\s*{_TUPLE})((?:\s*,\s*{_TUPLE})+)", re.IGNORECASE)
_BATCH_SUFFIX = re.compile(r"__\d+$")


def _replace_token(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind in ("dollar", "estring", "string", "open_string", "number"):
        return "?"
    if kind in ("line_comment", "block_comment"):
        return " "
    return match.group(0)


def _collapse_values(match: re.Match[str]) -> str:
    extra = len(re.findall(_TUPLE, match.group(2)))
    return f"{match.group(1)} /* +{extra} more */"


def normalize_statement(statement: str, max_length: int = 1000) -> str:
    """Return ``statement`` with literals replaced by ``?``, comments dropped, whitespace collapsed.

    Repeated ``VALUES (...), (...)`` tuples are shown once with a count, and
    the result is cut to ``max_length`` characters (ending in ``…``).

    >>> normalize_statement("SELECT * FROM t WHERE name = 'bob' AND n > 42 -- note")
    'SELECT * FROM t WHERE name = ? AND n > ?'
    """
    text = _SQL_TOKENS.sub(_replace_token, statement)
    text = _WHITESPACE.sub(" ", text).strip()
    text = _REPEATED_VALUES.sub(_collapse_values, text)
    if len(text) > max_length:
        text = text[: max(max_length - 1, 0)] + "…"
    return text


def _is_row(value: object) -> bool:
    return isinstance(value, (Mapping, tuple, list))


def _show_value(value: object, max_length: int = 80) -> str:
    if isinstance(value, (str, bytes)):
        probe = value if isinstance(value, str) else value[:32].decode("latin-1")
        if _SECRET_LOOKING_VALUE.match(probe):
            return MASK
    shown = repr(value)
    return shown if len(shown) <= max_length else shown[: max_length - 1] + "…"


def describe_parameters(
    parameters: Any,
    *,
    executemany: bool,
    positional_names: Sequence[str] | None = None,
    reveal: bool = False,
    sensitive_names: re.Pattern[str] = DEFAULT_SENSITIVE_NAMES,
    max_names: int = 50,
) -> tuple[dict[str, str], int]:
    """Describe bound parameters safely: ``({name: shown_value}, parameter_sets)``.

    ``parameters`` is what the DBAPI got: a mapping, a positional sequence,
    or (``executemany``) a sequence of either. Only the first row of an
    executemany is described. Values are :data:`MASK` unless ``reveal``; even
    then a value stays masked when its name matches ``sensitive_names``, when
    it looks like a token or password hash, or when its name is unknown (a
    positional parameter SQLAlchemy did not name). insertmanyvalues batches
    name their parameters ``email__0``, ``email__1``...; those are shown once,
    as ``email``, and counted as parameter sets.
    """
    if parameters is None:
        return {}, 1
    sets = 1
    row: Any = parameters
    if (
        executemany
        and isinstance(parameters, (list, tuple))
        and parameters
        and _is_row(parameters[0])
    ):
        sets = len(parameters)
        row = parameters[0]

    described: dict[str, str] = {}
    if isinstance(row, Mapping):
        suffixed = 0
        batch_rows: set[str] = set()
        for key in row:
            name = str(key)
            base = _BATCH_SUFFIX.sub("", name)
            if base != name:
                suffixed += 1
                batch_rows.add(name[len(base) :])
            if base in described or len(described) >= max_names:
                continue
            described[base] = _shown(base, row[key], reveal, sensitive_names, named=True)
        if suffixed and len(batch_rows) > 1:
            sets = len(batch_rows)
        return described, sets

    if isinstance(row, (list, tuple)):
        values = list(row)
        names = list(positional_names or ())
        named = bool(names) and len(values) % len(names) == 0
        if named and len(values) > len(names):
            sets = max(sets, len(values) // len(names))
        for index, value in enumerate(values[: len(names)] if named else values):
            name = names[index] if named else str(index + 1)
            if name in described:
                continue
            if len(described) >= max_names:
                break
            described[name] = _shown(name, value, reveal, sensitive_names, named=named)
        return described, sets

    return {"1": MASK}, sets


def _shown(
    name: str, value: object, reveal: bool, sensitive_names: re.Pattern[str], *, named: bool
) -> str:
    if not reveal or not named or sensitive_names.search(name):
        return MASK
    return _show_value(value)
