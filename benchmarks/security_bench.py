"""Security benchmark: SecurityManager against raw PyJWT, argon2-cffi and bcrypt, in one run.

Rounds are interleaved (every contender once per round, in rotating order) so
a noisy neighbour hurts all of them alike; the table shows medians over rounds
and the ratio to the raw library (the floor; lower is better, target <= 1.15
for tokens). The loop-stall part measures the longest delay a 1 ms ticker
sees while 8 passwords are hashed concurrently (target <= 5 ms).

Run: python benchmarks/security_bench.py   (bounded: about a minute)
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import argon2
import bcrypt
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from backend_kit.security import Argon2Parameters, SecurityManager

SECRET = secrets.token_urlsafe(48)
TOKEN_ROUNDS = 41
HASH_ROUNDS = 5
STALL_ROUNDS = 5
REQUIRED = ["exp", "iat", "sub", "jti", "type"]


def _ops_per_second(function: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        function()
    return count / (time.perf_counter() - started)


def _paired(
    raw: Callable[[], object], kit: Callable[[], object], count: int, rounds: int
) -> tuple[float, float, float]:
    """Median ops/s of each, and the median of per-round time ratios (kit / raw).

    Each round runs both back to back, in alternating order, on short blocks:
    a neighbour's burst of load hits both halves of a round, so the per-round
    ratio stays meaningful on a shared machine even when ops/s swing.
    """
    raw_rates: list[float] = []
    kit_rates: list[float] = []
    ratios: list[float] = []
    for round_number in range(rounds):
        if round_number % 2:
            kit_rate = _ops_per_second(kit, count)
            raw_rate = _ops_per_second(raw, count)
        else:
            raw_rate = _ops_per_second(raw, count)
            kit_rate = _ops_per_second(kit, count)
        raw_rates.append(raw_rate)
        kit_rates.append(kit_rate)
        ratios.append(raw_rate / kit_rate)
    return statistics.median(raw_rates), statistics.median(kit_rates), statistics.median(ratios)


# ------------------------------------------------------------------ tokens
def _token_contenders(
    algorithm: str,
) -> tuple[dict[str, Callable[[], object]], dict[str, Callable[[], object]]]:
    if algorithm == "HS256":
        sign_key: Any = SECRET
        verify_key: Any = SECRET
        security = SecurityManager(secret_key=SECRET, argon2="owasp_minimum")
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        sign_key, verify_key = private, private.public_key()
        security = SecurityManager(private_key=private, algorithm="EdDSA", argon2="owasp_minimum")

    def raw_create() -> str:
        # The same claims SecurityManager writes: sub, iat, exp, a 128-bit jti, type.
        now = int(time.time())
        claims = {
            "sub": "user-42",
            "iat": now,
            "exp": now + 900,
            "jti": secrets.token_urlsafe(16),
            "type": "access",
        }
        return jwt.encode(claims, sign_key, algorithm=algorithm)

    def kit_create() -> str:
        return security.create_access_token({"sub": "user-42"})

    token = kit_create()

    def raw_decode() -> dict[str, Any]:
        # The same checks: pinned algorithm, required claims, leeway, token type.
        claims: dict[str, Any] = jwt.decode(
            token, verify_key, algorithms=[algorithm], leeway=30, options={"require": REQUIRED}
        )
        if claims["type"] != "access":
            raise ValueError("wrong type")
        return claims

    def kit_decode() -> dict[str, Any]:
        # Includes the revocation lookup (memory store) that raw PyJWT does not do.
        return security.decode_access_token(token)

    return {"raw PyJWT": raw_create, "backend-kit": kit_create}, {
        "raw PyJWT": raw_decode,
        "backend-kit": kit_decode,
    }


def bench_tokens() -> list[tuple[str, float, float, float]]:
    rows = []
    for algorithm, count in (("HS256", 1000), ("EdDSA", 300)):
        create, decode = _token_contenders(algorithm)
        for label, contenders in (("create", create), ("decode", decode)):
            raw, kit, ratio = _paired(
                contenders["raw PyJWT"], contenders["backend-kit"], count, TOKEN_ROUNDS
            )
            rows.append((f"{algorithm} {label}", raw, kit, ratio))
    return rows


# --------------------------------------------------------------- passwords
def _median_ms(function: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_passwords() -> list[tuple[str, float, float]]:
    rows = []
    password = "correct horse battery staple"
    for preset in ("owasp_minimum", "rfc_9106_low_memory"):
        params = Argon2Parameters.preset(preset)
        security = SecurityManager(secret_key=SECRET, argon2=preset)
        raw = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
            hash_len=params.hash_len,
            salt_len=params.salt_len,
        )
        stored = security.hash_password(password)
        raw_stored = raw.hash(password)
        hash_times: dict[str, list[float]] = {"raw": [], "kit": []}
        verify_times: dict[str, list[float]] = {"raw": [], "kit": []}
        raw_hash = partial(raw.hash, password)
        kit_hash = partial(security.hash_password, password)
        raw_verify = partial(raw.verify, raw_stored, password)
        kit_verify = partial(security.verify_password, password, stored)
        for _ in range(HASH_ROUNDS):  # interleaved
            hash_times["raw"].append(_median_ms(raw_hash, 1))
            hash_times["kit"].append(_median_ms(kit_hash, 1))
            verify_times["raw"].append(_median_ms(raw_verify, 1))
            verify_times["kit"].append(_median_ms(kit_verify, 1))
        for label, times in (
            (f"argon2id {preset} hash", hash_times),
            (f"argon2id {preset} verify", verify_times),
        ):
            rows.append((label, statistics.median(times["raw"]), statistics.median(times["kit"])))
    # Legacy bcrypt cost 12: verify only (then the hash is upgraded).
    security = SecurityManager(secret_key=SECRET, argon2="owasp_minimum")
    legacy = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=12))
    raw_ms, kit_ms = [], []
    for _ in range(3):
        raw_ms.append(_median_ms(lambda: bcrypt.checkpw(password.encode(), legacy), 1))
        kit_ms.append(_median_ms(lambda: security.verify_password(password, legacy.decode()), 1))
    rows.append(("bcrypt 12 verify (legacy)", statistics.median(raw_ms), statistics.median(kit_ms)))
    return rows


# --------------------------------------------------------------- loop stall
async def _longest_stall(work: Callable[[], Any]) -> float:
    """Longest lateness (ms) of a 1 ms ticker while ``work()`` runs."""
    stall = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal stall
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            stall = max(stall, (time.perf_counter() - before) * 1000 - 1.0)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    await work()
    done.set()
    await ticking
    return stall


async def _stalls() -> dict[str, list[float]]:
    password = "correct horse battery staple"
    # Default preset (64 MiB, t=3, p=4) and default pool (one worker per core).
    security = SecurityManager(secret_key=SECRET)
    same_priority = SecurityManager(secret_key=SECRET, hashing_niceness=0)
    results: dict[str, list[float]] = {
        "idle loop (noise floor)": [],
        "inline (blocking)": [],
        "asyncio.to_thread": [],
        "ahash_password, niceness 0": [],
        "ahash_password (default)": [],
    }

    async def idle() -> None:
        await asyncio.sleep(0.5)

    async def inline() -> None:
        for _ in range(8):
            security.hash_password(password)

    async def to_thread() -> None:
        await asyncio.gather(
            *(asyncio.to_thread(security.hash_password, password) for _ in range(8))
        )

    async def kit_same_priority() -> None:
        await asyncio.gather(*(same_priority.ahash_password(password) for _ in range(8)))

    async def kit() -> None:
        await asyncio.gather(*(security.ahash_password(password) for _ in range(8)))

    # Start both pools outside the measurement.
    await security.ahash_password(password)
    await same_priority.ahash_password(password)
    work = dict(zip(results, (idle, inline, to_thread, kit_same_priority, kit), strict=True))
    for round_number in range(STALL_ROUNDS):
        for label, run in work.items():
            if label == "inline (blocking)" and round_number > 0:
                continue  # seconds of stall each time: once shows it
            results[label].append(await _longest_stall(run))
    await security.aclose()
    await same_priority.aclose()
    return results


def main() -> None:
    started = time.perf_counter()
    print(
        "Tokens (operations per second, median of paired rounds; ratio = median per-round time ratio)"
    )
    print(f"{'operation':<18}{'raw PyJWT/s':>14}{'backend-kit/s':>15}{'ratio':>8}  target")
    for label, raw, kit, ratio in bench_tokens():
        verdict = "met" if ratio <= 1.15 else "MISSED"
        print(f"{label:<18}{raw:>14,.0f}{kit:>15,.0f}{ratio:>8.2f}  <=1.15 {verdict}")
    print("\nPasswords (milliseconds per call, median; ratio vs the raw library)")
    print(f"{'operation':<38}{'raw ms':>9}{'backend-kit ms':>16}{'ratio':>8}")
    for label, raw_ms, kit_ms in bench_passwords():
        print(f"{label:<38}{raw_ms:>9.1f}{kit_ms:>16.1f}{kit_ms / raw_ms:>8.2f}")
    print(
        "\nLongest event-loop stall while 8 passwords are hashed (default preset; ms, median of rounds)"
    )
    for label, values in asyncio.run(_stalls()).items():
        median = statistics.median(values)
        note = ""
        if label == "ahash_password (default)":
            note = "  target <=5 ms " + ("met" if median <= 5 else "MISSED")
        print(f"{label:<28}{median:>9.1f}  (rounds: {', '.join(f'{v:.1f}' for v in values)}){note}")
    print(f"\nran in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
