"""homefeed.feed.errors: the domain errors and the stable codes clients switch on.

The README's error table is the contract: a client decides what to do (log in again,
show the message, retry after a minute) from `extensions.code` alone, so each error's
code must stay exactly what is documented, and every engine error must be a FeedError
(the API layer answers anything else as INTERNAL and hides its message).
"""

from __future__ import annotations

import inspect
import pickle

import pytest

from homefeed.feed import errors
from homefeed.feed.errors import FeedError, Forbidden, InvalidInput, NotFound, RateLimited, Unauthenticated

# What README.md documents, one code per error class.
DOCUMENTED: dict[type[FeedError], str] = {
    FeedError: "BAD_USER_INPUT",
    InvalidInput: "BAD_USER_INPUT",
    NotFound: "NOT_FOUND",
    Forbidden: "FORBIDDEN",
    Unauthenticated: "UNAUTHENTICATED",
    RateLimited: "RATE_LIMITED",
}


def module_errors() -> set[type[BaseException]]:
    """Every exception class defined in homefeed.feed.errors."""
    return {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    }


@pytest.mark.parametrize(("cls", "code"), DOCUMENTED.items(), ids=lambda v: getattr(v, "__name__", v))
def test_each_error_carries_its_documented_code(cls: type[FeedError], code: str) -> None:
    assert cls.code == code
    raised = cls("something the caller did")
    assert raised.code == code


def test_every_error_in_the_module_is_documented_and_a_feed_error() -> None:
    # A new error class without an entry here would reach clients with an undocumented code.
    found = module_errors()
    assert found == set(DOCUMENTED)
    for cls in found:
        assert issubclass(cls, FeedError)
        assert issubclass(cls, Exception)


def test_codes_distinguish_what_a_client_acts_on() -> None:
    # Only the base class shares a code (with InvalidInput); every subclass differs from the others.
    subclass_codes = [cls.code for cls in DOCUMENTED if cls is not FeedError]
    assert len(subclass_codes) == len(set(subclass_codes))
    for code in DOCUMENTED.values():
        assert code.isupper() and code.replace("_", "").isalpha()


@pytest.mark.parametrize("cls", list(DOCUMENTED), ids=lambda c: c.__name__)
def test_message_is_kept_verbatim_and_catchable_as_feed_error(cls: type[FeedError]) -> None:
    message = "handle @alice is taken"
    with pytest.raises(FeedError) as caught:
        raise cls(message)
    assert str(caught.value) == message
    assert type(caught.value) is cls
    assert caught.value.code == DOCUMENTED[cls]


@pytest.mark.parametrize("cls", list(DOCUMENTED), ids=lambda c: c.__name__)
def test_code_survives_pickling(cls: type[FeedError]) -> None:
    # Errors may cross process boundaries (workers, thread pools): type, message and code survive.
    copy = pickle.loads(pickle.dumps(cls("gone")))
    assert type(copy) is cls and str(copy) == "gone" and copy.code == DOCUMENTED[cls]


def test_code_is_a_class_attribute_not_per_instance_state() -> None:
    # The schema reads `original.code`; an instance must not need setting up for it to be right.
    first, second = NotFound("a"), NotFound("b")
    assert first.code == second.code == NotFound.code
    assert "code" not in vars(first)
