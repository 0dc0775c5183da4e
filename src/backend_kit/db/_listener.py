"""The slow-query listener: one set of execution events per engine, however many hooks.

Most of the cost of timing queries is having an event listener at all, so an
engine gets exactly one set of events and every hook hangs off it. Two ways
to time a statement (``events=``):

* ``"execute"`` (default): the dialect's ``do_execute`` /
  ``do_execute_no_params`` / ``do_executemany`` events. The listener calls the
  dialect's own method between two ``perf_counter()`` readings. These
  dialect-level events leave the connection's event machinery off, which is
  what makes a cursor-event pair expensive: measured here, about 0.5 µs (SQLite)
  and 1.3 µs (PostgreSQL) per query against 4 and 6.5 µs for the bare cursor
  pair (benchmarks/db_bench.py).
* ``"cursor"``: the classic ``before_cursor_execute`` /
  ``after_cursor_execute`` pair (plus ``handle_error`` for failures), for
  when another library owns ``do_execute``.

In both, the fast path is a ``perf_counter`` call before, and a subtraction
and a compare after; everything else (normalizing the statement, redacting
parameters, logging, hooks) runs only for a slow statement.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal

from backend_kit.db._naming import engine_name, remember_engine_name, sync_engine_of
from backend_kit.db._records import ExecuteStyle, SlowQuery, SlowQueryHook
from backend_kit.db._redaction import (
    DEFAULT_SENSITIVE_NAMES,
    describe_parameters,
    normalize_statement,
)
from backend_kit.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine, ExceptionContext
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["SlowQueryListener"]

logger = logging.getLogger("backend_kit.db")

# Where a statement's start time lives. The execution context is created per
# statement, so an attribute on it is the cheapest place that is still
# correct for nested executions (each has its own context). The rare
# execution without a context falls back to a stack in ``conn.info``.
_STARTED = "_backend_kit_query_started"
_STACK = "backend_kit.db.query_started"

# engine -> its listener: the "exactly one pair per engine" bookkeeping.
_ATTACHED: weakref.WeakKeyDictionary[Engine, SlowQueryListener] = weakref.WeakKeyDictionary()
_ATTACH_LOCK = threading.Lock()

_CursorEvent = Callable[..., Any]
EventStyle = Literal["execute", "cursor"]
_DIALECT_EVENTS = ("do_execute", "do_execute_no_params", "do_executemany")


class SlowQueryListener:
    """Times every statement an engine runs and reports the slow ones.

    A statement slower than ``threshold`` seconds logs one WARNING on the
    ``backend_kit.db`` logger (the :class:`SlowQuery` rides along as
    ``record.slow_query``) and is passed to each hook. A statement that
    fails after exceeding the threshold is reported too, with ``error`` set.

    Args:
        threshold: Seconds a statement may take before it is reported (default 0.1).
        hooks: Callables taking a :class:`SlowQuery` (see :class:`SlowQueryHook`).
        reveal_parameters: Show parameter values (``repr``, cut to 80 characters)
            instead of ``***``. Names matching ``sensitive_names``, values that
            look like tokens or password hashes, and unnamed positional values
            stay masked anyway. Default False.
        sensitive_names: Pattern (searched, case-insensitive by default) of
            parameter names never revealed.
        max_statement_length: Characters of normalized SQL kept (default 1000).
        log_level: Level of the slow-query log line (default WARNING).
        events: ``"execute"`` (default: the dialect's execute events, the
            cheapest) or ``"cursor"`` (a ``before_cursor_execute`` /
            ``after_cursor_execute`` pair).

    Raises:
        ConfigurationError: ``threshold`` is negative.
    """

    def __init__(
        self,
        threshold: float = 0.1,
        hooks: Iterable[SlowQueryHook] = (),
        *,
        reveal_parameters: bool = False,
        sensitive_names: re.Pattern[str] = DEFAULT_SENSITIVE_NAMES,
        max_statement_length: int = 1000,
        log_level: int = logging.WARNING,
        events: EventStyle = "execute",
    ) -> None:
        if events not in ("execute", "cursor"):
            raise ConfigurationError(f"events must be 'execute' or 'cursor', got {events!r}")
        if threshold < 0:
            raise ConfigurationError(f"slow_query_threshold must be >= 0 seconds, got {threshold}")
        self._threshold = float(threshold)
        self._hooks: tuple[SlowQueryHook, ...] = tuple(hooks)
        self._hooks_lock = threading.Lock()
        self.reveal_parameters = reveal_parameters
        self.sensitive_names = sensitive_names
        self.max_statement_length = max_statement_length
        self.log_level = log_level
        self.events: EventStyle = events
        self._before, self._after = self._make_cursor_events()
        # sync engine -> its (event name, listener) pairs, for detach()
        self._installed: weakref.WeakKeyDictionary[Engine, list[tuple[str, _CursorEvent]]] = (
            weakref.WeakKeyDictionary()
        )

    # ------------------------------------------------------------- public
    @property
    def threshold(self) -> float:
        """Seconds a statement may take before it is reported."""
        return self._threshold

    @property
    def hooks(self) -> tuple[SlowQueryHook, ...]:
        """The hooks called for each slow query, in order."""
        return self._hooks

    def add_hook(self, hook: SlowQueryHook) -> None:
        """Call ``hook`` for every later slow query (adds no event listener)."""
        with self._hooks_lock:
            self._hooks = (*self._hooks, hook)

    def remove_hook(self, hook: SlowQueryHook) -> None:
        """Stop calling ``hook``. Raises ``ValueError`` when it was not added."""
        with self._hooks_lock:
            hooks = list(self._hooks)
            hooks.remove(hook)
            self._hooks = tuple(hooks)

    def attach(self, engine: Engine | AsyncEngine, *, name: str | None = None) -> None:
        """Install this listener's events on ``engine`` (sync, or an AsyncEngine's ``sync_engine``).

        Attaching the same listener twice is a no-op, so an engine never gets
        a second set. ``name`` appears in every :class:`SlowQuery` (default
        ``dialect://host:port/database``).

        Raises:
            ConfigurationError: another SlowQueryListener is already attached;
                add hooks to that one (``SlowQueryListener.attached_to(engine)``).
        """
        from sqlalchemy import event

        sync = sync_engine_of(engine)
        with _ATTACH_LOCK:
            current = _ATTACHED.get(sync)
            if current is self:
                return
            if current is not None:
                raise ConfigurationError(
                    "this engine already has a SlowQueryListener; add hooks to it with "
                    "SlowQueryListener.attached_to(engine).add_hook(hook)"
                )
            if name is not None:
                remember_engine_name(sync, name)
            installed: list[tuple[str, _CursorEvent]]
            if self.events == "execute":
                installed = list(zip(_DIALECT_EVENTS, self._make_dialect_events(sync), strict=True))
                for identifier, listener in installed:
                    event.listen(sync, identifier, listener)
            else:
                # retval=True: the listener returns (statement, parameters) itself,
                # which saves the wrapper SQLAlchemy puts around a retval=False one.
                event.listen(sync, "before_cursor_execute", self._before, retval=True)
                event.listen(sync, "after_cursor_execute", self._after)
                event.listen(sync, "handle_error", self._on_error)
                installed = [
                    ("before_cursor_execute", self._before),
                    ("after_cursor_execute", self._after),
                    ("handle_error", self._on_error),
                ]
            self._installed[sync] = installed
            _ATTACHED[sync] = self

    def detach(self, engine: Engine | AsyncEngine) -> None:
        """Remove this listener's events from ``engine`` (no-op when not attached).

        Connections already open keep the events until they are closed; that
        is how SQLAlchemy events work.
        """
        from sqlalchemy import event

        sync = sync_engine_of(engine)
        with _ATTACH_LOCK:
            if _ATTACHED.get(sync) is not self:
                return
            for identifier, listener in self._installed.pop(sync, []):
                event.remove(sync, identifier, listener)
            del _ATTACHED[sync]

    @staticmethod
    def attached_to(engine: Engine | AsyncEngine) -> SlowQueryListener | None:
        """The listener attached to ``engine`` (sync or async), or ``None``."""
        return _ATTACHED.get(sync_engine_of(engine))

    # ---------------------------------------------------------- fast path
    def _make_dialect_events(self, engine: Engine) -> tuple[_CursorEvent, ...]:
        """``do_execute`` / ``do_execute_no_params`` / ``do_executemany`` listeners for ``engine``.

        Each runs the dialect's own method (so dialect-specific behaviour is
        kept) between two clock readings and returns True, which tells
        SQLAlchemy the execution happened. Each engine has its own dialect
        instance, so these listeners are per engine.
        """
        threshold = self._threshold
        report = self._report
        clock = perf_counter
        dialect = engine.dialect
        do_execute = dialect.do_execute
        do_execute_no_params = dialect.do_execute_no_params
        do_executemany = dialect.do_executemany
        engine_ref = weakref.ref(engine)

        def name() -> str:
            target = engine_ref()
            return engine_name(target) if target is not None else ""

        def on_do_execute(cursor: Any, statement: Any, parameters: Any, context: Any) -> bool:
            started = clock()
            try:
                do_execute(cursor, statement, parameters, context)
            except Exception as exc:
                elapsed = clock() - started
                if elapsed > threshold:
                    report(name(), statement, parameters, context, False, elapsed, exc)
                raise
            elapsed = clock() - started
            if elapsed > threshold:
                report(name(), statement, parameters, context, False, elapsed, None)
            return True

        def on_do_execute_no_params(cursor: Any, statement: Any, context: Any) -> bool:
            started = clock()
            try:
                do_execute_no_params(cursor, statement, context)
            except Exception as exc:
                elapsed = clock() - started
                if elapsed > threshold:
                    report(name(), statement, None, context, False, elapsed, exc)
                raise
            elapsed = clock() - started
            if elapsed > threshold:
                report(name(), statement, None, context, False, elapsed, None)
            return True

        def on_do_executemany(cursor: Any, statement: Any, parameters: Any, context: Any) -> bool:
            started = clock()
            try:
                do_executemany(cursor, statement, parameters, context)
            except Exception as exc:
                elapsed = clock() - started
                if elapsed > threshold:
                    report(name(), statement, parameters, context, True, elapsed, exc)
                raise
            elapsed = clock() - started
            if elapsed > threshold:
                report(name(), statement, parameters, context, True, elapsed, None)
            return True

        return on_do_execute, on_do_execute_no_params, on_do_executemany

    def _make_cursor_events(self) -> tuple[_CursorEvent, _CursorEvent]:
        # Closures over locals: no attribute lookups on self in the hot path.
        threshold = self._threshold
        report = self._report
        clock = perf_counter

        def before_cursor_execute(
            conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: Any
        ) -> tuple[Any, Any]:
            if context is not None:
                setattr(context, _STARTED, clock())
            else:
                conn.info.setdefault(_STACK, []).append(clock())
            return statement, parameters

        def after_cursor_execute(
            conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: Any
        ) -> None:
            # try is free on 3.11+ until it raises; it only raises for a statement
            # that was already running when the listener was attached.
            try:
                if context is not None:
                    elapsed = clock() - getattr(context, _STARTED)
                else:
                    elapsed = clock() - conn.info[_STACK].pop()
            except (AttributeError, KeyError, IndexError):
                return
            if elapsed > threshold:
                report(
                    engine_name(conn.engine),
                    statement,
                    parameters,
                    context,
                    executemany,
                    elapsed,
                    None,
                )

        return before_cursor_execute, after_cursor_execute

    def _on_error(self, exception_context: ExceptionContext) -> None:
        """``handle_error``: close the timer of a statement that raised, report it if slow."""
        # An exception raised in a handle_error listener *replaces* the user's
        # exception, so nothing may escape from here.
        try:
            self._close_failed_timer(exception_context)
        except Exception:  # never mask the database error the caller must see
            logger.exception("backend_kit slow-query listener failed while handling an error")

    def _close_failed_timer(self, exception_context: ExceptionContext) -> None:
        # Cursor executions carry their statement; other errors (commit, fetch,
        # pre-ping, connect) pass none and have no timer to close. (SQLAlchemy
        # 2.1.9 declares ExceptionContext.cursor but never sets it, so it cannot
        # be used to tell the two apart: pinned in tests/unit/test_db_extras.py.)
        statement = exception_context.statement
        conn = exception_context.connection
        if statement is None or conn is None:
            return
        context = exception_context.execution_context
        started: float | None
        if context is not None:
            started = getattr(context, _STARTED, None)
        else:
            stack = conn.info.get(_STACK)
            started = stack.pop() if stack else None
        if started is None:
            return
        elapsed = perf_counter() - started
        if elapsed > self._threshold:
            executemany = bool(context is not None and context.executemany)
            self._report(
                engine_name(conn.engine),
                statement,
                exception_context.parameters,
                context,
                executemany,
                elapsed,
                exception_context.original_exception,
            )

    # ---------------------------------------------------------- slow path
    def _report(
        self,
        name: str,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
        elapsed: float,
        exception: BaseException | None,
    ) -> None:
        """Build the record, log it, call the hooks. Never raises: it runs inside the
        user's execution, whose result (or exception) must come through unchanged."""
        try:
            self._emit(name, statement, parameters, context, executemany, elapsed, exception)
        except Exception:  # a reporting bug must not fail (or mask) the user's statement
            logger.exception("backend_kit could not report a slow query on %s", name)

    def _emit(
        self,
        name: str,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
        elapsed: float,
        exception: BaseException | None,
    ) -> None:
        error = type(exception).__name__ if exception is not None else None
        cause = getattr(exception, "orig", None)  # a wrapped DBAPI error: name the driver's class
        if isinstance(cause, BaseException):
            error = type(cause).__name__
        style: ExecuteStyle = "executemany" if executemany else "execute"
        style_enum = getattr(context, "execute_style", None)
        if style_enum is not None and style_enum.name == "INSERTMANYVALUES":
            style = "insertmanyvalues"
            executemany = True
        compiled = getattr(context, "compiled", None)
        positional_names = getattr(compiled, "positiontup", None) if compiled is not None else None
        shown, sets = describe_parameters(
            parameters,
            executemany=executemany,
            positional_names=positional_names,
            reveal=self.reveal_parameters,
            sensitive_names=self.sensitive_names,
        )
        query = SlowQuery(
            duration=elapsed,
            threshold=self._threshold,
            statement=normalize_statement(statement, self.max_statement_length),
            parameters=shown,
            executemany=executemany,
            execute_style=style,
            parameter_sets=sets,
            engine_name=name,
            error=error,
        )
        logger.log(
            self.log_level,
            "slow query on %s: %.1f ms (threshold %.4g ms)%s%s: %s parameters=%s",
            query.engine_name,
            query.duration_ms,
            query.threshold * 1000.0,
            f", {style} of {sets} parameter sets" if executemany else "",
            f", failed with {error}" if error else "",
            query.statement,
            dict(query.parameters),
            extra={"slow_query": query},
        )
        for hook in self._hooks:
            try:
                hook(query)
            except Exception:  # a broken hook must never fail the user's query
                logger.exception(
                    "slow-query hook %r raised; the statement's outcome is unaffected", hook
                )
