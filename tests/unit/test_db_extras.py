"""backend_kit.db without its extras, and SQLAlchemy behaviour the listener depends on."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa
from sqlalchemy import event, text
from sqlalchemy.engine import ExceptionContext


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("blocked", "url", "extra"),
    [
        ("sqlalchemy", "sqlite://", "db"),
        ("psycopg", "postgresql+psycopg://app@db/app", "postgres"),
        ("psycopg", "postgresql://app@db/app", "postgres"),
    ],
)
def test_factories_name_the_missing_extra(blocked: str, url: str, extra: str) -> None:
    result = _run_python(
        f"""
        import sys
        sys.modules[{blocked!r}] = None  # as if the extra were not installed
        import backend_kit.db as db
        from backend_kit.errors import MissingDependencyError
        for factory in (db.create_pooled_engine, db.create_async_pooled_engine):
            try:
                factory({url!r})
            except MissingDependencyError as exc:
                print(exc)
            else:
                raise SystemExit("created an engine without its extra")
        """
    )
    assert result.returncode == 0, result.stderr + result.stdout
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all(f"pip install 'backend-kit[{extra}]'" in line for line in lines)


def test_sqlalchemy_exception_context_has_no_cursor() -> None:
    """Pinned: SQLAlchemy 2.1.9 declares ExceptionContext.cursor but never assigns it.

    Reading it raises AttributeError, and an exception raised inside a
    handle_error listener replaces the user's error — so the listener tells
    cursor failures apart by ``statement`` and never touches ``cursor``.
    If this starts failing, SQLAlchemy fixed it; the listener still works.
    """
    engine = sa.create_engine("sqlite://")
    seen: list[bool] = []

    @event.listens_for(engine, "handle_error")
    def _probe(ctx: ExceptionContext) -> None:
        seen.append(hasattr(ctx, "cursor"))
        seen.append(ctx.statement is not None)

    with engine.connect() as conn, pytest.raises(sa.exc.OperationalError):
        conn.execute(text("SELECT * FROM missing_table"))
    engine.dispose()
    assert seen == [False, True]
