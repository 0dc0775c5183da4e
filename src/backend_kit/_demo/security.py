"""Demo part: hash, verify, upgrade a legacy bcrypt hash, issue a token, refuse a forged one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta

from backend_kit._demo._report import Report
from backend_kit._redact import redact_url


async def run(report: Report) -> None:
    # Imported here, not at module level: `python -m backend_kit` must not
    # load the security extra unless this part runs.
    import bcrypt

    from backend_kit.errors import TokenError
    from backend_kit.security import MemoryRevocationStore, RevocationStore, SecurityManager

    redis_url = os.environ.get("REDIS_URL")
    store: RevocationStore
    closers: list[Callable[[], Awaitable[None]]] = []
    if redis_url:
        from backend_kit.security.redis import RedisRevocationStore

        redis_store = RedisRevocationStore(redis_url, key_prefix="backend_kit:demo:security:")
        closers.append(redis_store.aclose)
        store = redis_store
        backend = f"Redis revocation store at {redact_url(redis_url)}"
    else:
        store = MemoryRevocationStore()
        backend = "memory revocation store (set REDIS_URL to use Redis)"
    report.part("security", backend)

    # A throwaway secret; a service reads JWT_SECRET_KEY (SecurityManager.from_env()).
    # Short lifetimes, so what the demo revokes in a real Redis expires within minutes.
    async with SecurityManager(
        secret_key=secrets.token_urlsafe(48),
        argon2="owasp_minimum",
        revocation_store=store,
        access_token_expires=timedelta(minutes=5),
        refresh_token_expires=timedelta(minutes=10),
    ) as security:
        password_hash = await security.ahash_password("correct horse battery staple")
        report.step(f"hashed a password off the event loop: {password_hash[:33]}...")
        matches = await security.averify_password("correct horse battery staple", password_hash)
        wrong = await security.averify_password("Tr0ub4dor&3", password_hash)
        report.step(f"verified it: right password -> {matches}, wrong password -> {wrong}")

        legacy = bcrypt.hashpw(b"hunter2 but longer", bcrypt.gensalt(rounds=4)).decode()
        ok, upgraded = await security.averify_and_update("hunter2 but longer", legacy)
        report.step(
            f"legacy bcrypt hash {legacy[:7]}... verified ({ok}) and upgraded on login "
            f"to {(upgraded or '')[:10]}..."
        )

        pair = security.create_token_pair({"sub": "user-42", "roles": ["reader"]})
        claims = await security.adecode_access_token(pair.access_token)
        report.step(
            f"issued an HS256 access token for {claims['sub']!r}, valid "
            f"{int(security.access_token_expires.total_seconds() // 60)} min; decoded it back"
        )

        head, payload, signature = pair.access_token.split(".")
        tampered = (
            f"{head}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
        )
        try:
            await security.adecode_access_token(tampered)
            report.step("a tampered token was ACCEPTED (this should never happen)")
        except TokenError as exc:
            report.step(f"a tampered token was refused: {type(exc).__name__}: {exc}")

        rotated = await security.arefresh(pair.refresh_token)
        try:
            await security.arefresh(pair.refresh_token)
        except TokenError as exc:
            report.step(f"refresh rotated the tokens; replaying the old one: {exc}")
        try:
            await security.adecode_access_token(rotated.access_token)
        except TokenError as exc:
            report.step(f"...and the whole session is revoked: {exc}")
    for close in closers:
        await close()
