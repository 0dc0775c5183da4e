"""Statement normalization and parameter redaction (pure Python, no database)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from backend_kit.db._redaction import MASK, describe_parameters, normalize_statement


def test_string_and_number_literals_become_placeholders() -> None:
    sql = "SELECT * FROM users WHERE email = 'bob@example.com' AND age > 42 AND score < 1.5e3"
    assert normalize_statement(sql) == (
        "SELECT * FROM users WHERE email = ? AND age > ? AND score < ?"
    )


def test_escaped_quotes_dollar_quotes_and_e_strings_are_removed_whole() -> None:
    sql = "SELECT 'it''s', E'a\\'b', $$dollar 'x' 7$$, $tag$pw$tag$ FROM t"
    assert normalize_statement(sql) == "SELECT ?, ?, ?, ? FROM t"


def test_identifiers_placeholders_and_casts_are_kept() -> None:
    sql = 'SELECT t1.col_2, "Col 3" FROM t1 WHERE a = %(param_1)s AND b = $2 AND c = :name AND d = ?::int'
    assert normalize_statement(sql) == sql


def test_comments_and_whitespace_collapse() -> None:
    sql = "SELECT 1 -- secret note\n  FROM   t /* token 'abc' */ WHERE x = 2"
    assert normalize_statement(sql) == "SELECT ? FROM t WHERE x = ?"


def test_repeated_values_tuples_collapse() -> None:
    sql = "INSERT INTO t (a, b) VALUES (%(a__0)s, %(b__0)s), (%(a__1)s, %(b__1)s), (%(a__2)s, %(b__2)s)"
    assert normalize_statement(sql) == (
        "INSERT INTO t (a, b) VALUES (%(a__0)s, %(b__0)s) /* +2 more */"
    )


def test_truncated_with_an_ellipsis() -> None:
    out = normalize_statement("SELECT " + ", ".join(f"c{i}" for i in range(500)), max_length=40)
    assert len(out) == 40
    assert out.endswith("…")


def test_an_unterminated_literal_is_removed_to_the_end() -> None:
    assert normalize_statement("SELECT * FROM t WHERE pw = 'hunter2 and mo") == (
        "SELECT * FROM t WHERE pw = ?"
    )


@given(st.text(alphabet=st.characters(blacklist_characters="'\\", codec="utf-8"), min_size=1))
def test_no_quoted_literal_survives(secret: str) -> None:
    sql = f"SELECT * FROM t WHERE pw = '{secret}' AND x = 1"  # noqa: S608 - input to the normalizer, never executed
    out = normalize_statement(sql)
    assert out == "SELECT * FROM t WHERE pw = ? AND x = ?"


def test_values_are_masked_by_default() -> None:
    shown, sets = describe_parameters({"email": "a@b.c", "password": "hunter2"}, executemany=False)
    assert shown == {"email": MASK, "password": MASK}
    assert sets == 1


def test_reveal_still_masks_sensitive_names_and_secret_looking_values() -> None:
    params = {
        "email": "a@b.c",
        "password": "hunter2",
        "api_key": "k",
        "refresh_token": "t",
        "client_secret": "s",
        "note": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "stored": "$argon2id$v=19$m=65536,t=3,p=4$abc",
        "n": 7,
    }
    shown, _ = describe_parameters(params, executemany=False, reveal=True)
    assert shown == {
        "email": "'a@b.c'",
        "password": MASK,
        "api_key": MASK,
        "refresh_token": MASK,
        "client_secret": MASK,
        "note": MASK,
        "stored": MASK,
        "n": "7",
    }


def test_custom_sensitive_pattern() -> None:
    shown, _ = describe_parameters(
        {"pin_code": "1234", "email": "x"},
        executemany=False,
        reveal=True,
        sensitive_names=re.compile("pin", re.IGNORECASE),
    )
    assert shown == {"pin_code": MASK, "email": "'x'"}


def test_positional_parameters_take_compiled_names_and_unnamed_stay_masked() -> None:
    shown, _ = describe_parameters(
        ("a@b.c", "hunter2"),
        executemany=False,
        positional_names=["email", "password"],
        reveal=True,
    )
    assert shown == {"email": "'a@b.c'", "password": MASK}
    unnamed, _ = describe_parameters(("hunter2",), executemany=False, reveal=True)
    assert unnamed == {"1": MASK}


def test_executemany_describes_the_first_row_and_counts_rows() -> None:
    rows = [{"id": 1, "password": "a"}, {"id": 2, "password": "b"}, {"id": 3, "password": "c"}]
    shown, sets = describe_parameters(rows, executemany=True, reveal=True)
    assert shown == {"id": "1", "password": MASK}
    assert sets == 3


def test_insertmanyvalues_batch_names_are_folded() -> None:
    batch = {"email__0": "a", "password__0": "x", "email__1": "b", "password__1": "y"}
    shown, sets = describe_parameters(batch, executemany=True)
    assert shown == {"email": MASK, "password": MASK}
    assert sets == 2


def test_long_revealed_values_are_cut() -> None:
    shown, _ = describe_parameters({"bio": "x" * 500}, executemany=False, reveal=True)
    assert len(shown["bio"]) == 80
    assert shown["bio"].endswith("…")


def test_none_parameters() -> None:
    assert describe_parameters(None, executemany=False) == ({}, 1)


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
        st.text(min_size=4, max_size=40),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_masked_values_never_appear_in_the_description(
    parameters: dict[str, str], executemany: bool
) -> None:
    rows: object = [parameters, parameters] if executemany else parameters
    shown, _ = describe_parameters(rows, executemany=executemany)
    assert set(shown.values()) == {MASK}
    assert set(shown) == set(parameters)


def test_percentiles_use_nearest_rank() -> None:
    from backend_kit.db._status import _percentile

    ordered = [float(i) for i in range(1, 101)]
    assert _percentile(ordered, 0.50) == 50
    assert _percentile(ordered, 0.95) == 95
    assert _percentile(ordered, 0.99) == 99
    assert _percentile([7.0], 0.99) == 7
