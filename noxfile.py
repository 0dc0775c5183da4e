"""Developer sessions: ``nox -s tests lint typecheck docs build``.

``.ci/run`` is what CI runs; these sessions are the same checks, each in its
own virtual environment, for running one at a time.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "tests_without_extras", "lint", "typecheck", "docs", "build"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite with every extra (integration tests skip when a service is away)."""
    session.install("-e", ".[all,test]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def tests_without_extras(session: nox.Session) -> None:
    """The core installed alone: importing works and missing extras name their install line."""
    session.install("-e", ".", "pytest", "pytest-asyncio", "pytest-timeout", "hypothesis")
    session.run(
        "pytest",
        "tests/unit/test_imports.py",
        "tests/unit/test_errors.py",
        "tests/unit/test_public_api.py",
        "--noconftest",
        *session.posargs,
    )


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[all,test]")
    session.run("mypy")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    session.install("-e", ".[all,test]")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python="3.11")
def build(session: nox.Session) -> None:
    """Wheel and sdist, checked by twine, and the wheel imported with no extras."""
    session.install("build", "twine")
    session.run("rm", "-rf", "dist", external=True)
    session.run("python", "-m", "build")
    session.run("twine", "check", "--strict", "dist/*")
