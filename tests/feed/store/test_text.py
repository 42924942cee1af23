"""homefeed.feed.store.text: what PostgreSQL's text type can hold, checked before anything is sent."""

from __future__ import annotations

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.errors import InvalidInput
from homefeed.feed.services import Services
from homefeed.feed.store.text import check_storable, storable


@pytest.mark.parametrize("value", ["a\x00", "\x00", "x\ud800", "\udfff"])
def test_nul_and_lone_surrogates_are_refused(value: str) -> None:
    assert not storable(value)
    with pytest.raises(InvalidInput, match="displayName"):
        check_storable(value, "displayName")


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")))
def test_any_other_text_is_kept_as_it_is(value: str) -> None:
    assert storable(value)
    assert check_storable(value, "text") is value


@pytest.mark.parametrize("value", ["a\x00", "x\ud800"])
async def test_postgres_indeed_refuses_what_is_refused(services: Services, value: str) -> None:
    # The rule mirrors the server: if PostgreSQL ever accepts these, the check is needless.
    with pytest.raises((asyncpg.DataError, asyncpg.CharacterNotInRepertoireError, UnicodeEncodeError)):
        await services.pool.fetchval("SELECT $1::text", value)
