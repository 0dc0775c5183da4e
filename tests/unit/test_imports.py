"""The import rule: ``import backend_kit`` (and every package ``__init__``) imports no extra.

Checked in fresh interpreters, because this test process has long since
imported everything.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import backend_kit

# Optional dependencies that must never be imported as a side effect of
# importing backend_kit or one of its packages.
EXTRAS_MODULES = (
    "redis",
    "sqlalchemy",
    "aio_pika",
    "aiormq",
    "consul",
    "aiohttp",
    "pymongo",
    "motor",
    "jwt",
    "passlib",
    "argon2",
    "bcrypt",
    "orjson",
    "psycopg",
    "cryptography",
    "requests",
    "stamina",
    "tenacity",
    "limits",
)

# Modules that need an extra, with the top-level package that extra provides
# and the extra's name. Each component adds its backend modules here; the
# parametrized test below proves each one fails with the install line when the
# package is missing.
BACKEND_MODULES: dict[str, tuple[str, str]] = {
    "backend_kit.discovery.consul": ("consul", "consul"),
    "backend_kit.db._pool": ("sqlalchemy", "db"),
    "backend_kit.security.redis": ("redis", "redis"),
    "backend_kit.cache.redis": ("redis", "redis"),
    "backend_kit.events.amqp": ("aio_pika", "amqp"),
    "backend_kit.resilience.redis": ("redis", "redis"),
    "backend_kit.users.mongo": ("pymongo", "mongo"),
    "backend_kit.users.sql": ("sqlalchemy", "db"),
}


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _packages() -> list[str]:
    """backend_kit and every subpackage (``__init__`` modules), found by walking the tree."""
    names = ["backend_kit"]
    names += [
        info.name
        for info in pkgutil.walk_packages(backend_kit.__path__, prefix="backend_kit.")
        if info.ispkg
    ]
    return sorted(names)


def _extras_imported_by(module: str) -> list[str]:
    result = _run_python(
        f"""
        import importlib, json, sys
        importlib.import_module({module!r})
        forbidden = {list(EXTRAS_MODULES)!r}
        print(json.dumps(sorted(m for m in forbidden if m in sys.modules)))
        """
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_import_backend_kit_imports_no_extra() -> None:
    assert _extras_imported_by("backend_kit") == []


@pytest.mark.parametrize("package", _packages())
def test_package_init_imports_no_extra(package: str) -> None:
    assert _extras_imported_by(package) == []


def test_errors_and_cli_import_no_extra() -> None:
    assert _extras_imported_by("backend_kit.errors") == []
    assert _extras_imported_by("backend_kit.__main__") == []


def test_backend_modules_all_registered() -> None:
    """Every module named after a backend is in BACKEND_MODULES (so its error is tested)."""
    backend_names = {"redis", "sql", "mongo", "amqp", "consul"}
    found = {
        info.name
        for info in pkgutil.walk_packages(backend_kit.__path__, prefix="backend_kit.")
        if info.name.rsplit(".", 1)[-1] in backend_names
    }
    assert found <= set(BACKEND_MODULES), sorted(found - set(BACKEND_MODULES))


@pytest.mark.parametrize(("module", "needs"), sorted(BACKEND_MODULES.items()))
def test_backend_module_without_its_extra_names_the_install_line(
    module: str, needs: tuple[str, str]
) -> None:
    package, extra = needs
    result = _run_python(
        f"""
        import sys
        sys.modules[{package!r}] = None  # as if the extra were not installed
        from backend_kit.errors import MissingDependencyError
        try:
            import {module}
        except MissingDependencyError as exc:
            assert isinstance(exc, ImportError)
            print(exc)
        else:
            raise SystemExit("imported without its extra")
        """
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"pip install 'backend-kit[{extra}]'" in result.stdout


def test_import_optional_names_the_extra_when_missing() -> None:
    result = _run_python(
        """
        import sys
        sys.modules["redis"] = None
        from backend_kit._optional import import_optional
        from backend_kit.errors import MissingDependencyError
        try:
            import_optional("redis.asyncio", extra="redis")
        except MissingDependencyError as exc:
            print(exc.package, exc.extra, exc, sep="|")
        """
    )
    assert result.returncode == 0, result.stderr
    package, extra, message = result.stdout.strip().split("|")
    assert (package, extra) == ("redis", "redis")
    assert "pip install 'backend-kit[redis]'" in message


def test_import_optional_returns_the_module_when_present() -> None:
    from backend_kit._optional import import_optional

    module = import_optional("json", extra="never-needed")
    assert module.dumps({"a": 1}) == '{"a": 1}'


def test_import_optional_does_not_mask_a_broken_install(tmp_path: Path) -> None:
    """An installed package that fails on *its own* missing dependency is not a missing extra."""
    (tmp_path / "half_installed.py").write_text("import not_there_at_all\n")
    result = _run_python(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from backend_kit._optional import import_optional
        from backend_kit.errors import MissingDependencyError
        try:
            import_optional("half_installed", extra="x")
        except MissingDependencyError:
            print("masked")
        except ModuleNotFoundError as exc:
            print("propagated", exc.name)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["propagated", "not_there_at_all"]
