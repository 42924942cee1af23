"""homefeed.feed.auth: password rules, argon2 hashing off the loop, and signed session tokens."""

from __future__ import annotations

import asyncio
import base64
import math
import threading
import time
from collections.abc import Callable
from typing import Literal

import jwt
import pytest
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed import auth
from homefeed.feed.auth import MAX_PASSWORD, MIN_PASSWORD, Passwords, Tokens, check_password
from homefeed.feed.errors import FeedError, InvalidInput, RateLimited, Unauthenticated

SECRET = "auth-test-secret-0123456789abcdefghij"
TOKENS = Tokens(SECRET, ttl_seconds=3600)
# Cheap parameters: the behaviour under test does not depend on the cost.
FAST = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
user_ids = st.integers(min_value=1, max_value=2**63 - 1)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed(claims: dict[str, object], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


# --- passwords -------------------------------------------------------------------------------


@given(password=st.text(max_size=MAX_PASSWORD + 20))
def test_check_password_accepts_exactly_the_documented_lengths(password: str) -> None:
    if MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        assert check_password(password) == password
    else:
        with pytest.raises(InvalidInput):
            check_password(password)


def test_password_length_bounds_are_the_documented_ones() -> None:
    assert (MIN_PASSWORD, MAX_PASSWORD) == (8, 256)
    check_password("x" * 8)
    check_password("x" * 256)
    for bad in ("", "x" * 7, "x" * 257):
        with pytest.raises(InvalidInput) as caught:
            check_password(bad)
        assert caught.value.code == "BAD_USER_INPUT"


async def test_hash_verifies_only_its_own_password() -> None:
    hashed = await FAST.hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert "correct horse battery" not in hashed
    assert await FAST.verify(hashed, "correct horse battery")
    assert not await FAST.verify(hashed, "correct horse batterY")
    assert not await FAST.verify(hashed, "")


async def test_hashes_are_salted() -> None:
    first, second = await asyncio.gather(FAST.hash("same password"), FAST.hash("same password"))
    assert first != second
    assert await FAST.verify(first, "same password") and await FAST.verify(second, "same password")


@pytest.mark.parametrize("stored", ["", "not a hash", "$argon2id$v=19$m=1024,t=1,p=1$garbage", "$2b$12$abc"])
async def test_a_corrupt_stored_hash_fails_instead_of_raising(stored: str) -> None:
    assert await FAST.verify(stored, "whatever password") is False


async def test_no_stored_hash_never_verifies_even_with_the_decoy_password() -> None:
    # A missing user is checked against a decoy hash (same cost); it must not match anything,
    # including the decoy's own password.
    assert await FAST.verify(None, "decoy password, never matches") is False
    assert await FAST.verify(None, "any password at all") is False


async def test_a_hash_from_other_parameters_still_verifies() -> None:
    # Stored hashes keep their own parameters: raising the cost later must not lock users out.
    old = await Passwords(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)).hash("pw-123456")
    assert await FAST.verify(old, "pw-123456")


async def test_hashing_does_not_block_the_event_loop() -> None:
    slow = Passwords(PasswordHasher(time_cost=4, memory_cost=32 * 1024, parallelism=1))
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await slow.hash("a password that takes a while")
    elapsed = time.perf_counter() - started
    done.set()
    await task
    # Were the hash on the loop, the ticker would not run until it finished (one tick at most).
    assert elapsed > 0.01, "the hasher was too fast for this test to mean anything"
    assert ticks >= 3


# --- tokens ----------------------------------------------------------------------------------


@given(user_id=user_ids)
def test_token_round_trip(user_id: int) -> None:
    token = TOKENS.issue(user_id)
    assert TOKENS.verify(token) == user_id
    assert TOKENS.verify(token) == user_id  # again, from what the verifier remembers


def test_token_lifetime_is_the_configured_one() -> None:
    before = int(time.time())
    token = Tokens(SECRET, ttl_seconds=86_400 * 30).issue(42)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "42"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 86_400 * 30
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_expired_token_is_unauthenticated_and_says_so() -> None:
    expired = Tokens(SECRET, ttl_seconds=-10).issue(7)
    with pytest.raises(Unauthenticated, match="expired"):
        TOKENS.verify(expired)


async def test_token_remembered_as_valid_still_expires() -> None:
    tokens = Tokens(SECRET, ttl_seconds=3600)
    exp = math.ceil(time.time()) + 1
    token = signed({"sub": "9", "iat": int(time.time()), "exp": exp})
    assert tokens.verify(token) == 9  # now remembered
    await asyncio.sleep(exp + 0.05 - time.time())
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)
    with pytest.raises(Unauthenticated):  # and stays rejected
        tokens.verify(token)


def test_wrong_secret_is_rejected_even_after_the_right_one_accepted_it() -> None:
    token = TOKENS.issue(5)
    assert TOKENS.verify(token) == 5
    with pytest.raises(Unauthenticated, match="invalid"):
        Tokens("a-different-secret-0123456789abcdefgh", ttl_seconds=3600).verify(token)
    guessed = "a-guessed-secret-0123456789abcdefghi"
    forged = signed({"sub": "5", "exp": int(time.time()) + 600}, secret=guessed)
    with pytest.raises(Unauthenticated):
        TOKENS.verify(forged)


@given(
    user_id=user_ids,
    segment=st.sampled_from([0, 1, 2]),
    index=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_tampered_byte_is_rejected(user_id: int, segment: int, index: int, flip: int) -> None:
    token = TOKENS.issue(user_id)
    TOKENS.verify(token)  # remembered: tampering must not ride on that
    parts = token.split(".")
    raw = bytearray(unb64(parts[segment]))
    raw[index % len(raw)] ^= flip
    parts[segment] = b64(bytes(raw))
    with pytest.raises(Unauthenticated):
        TOKENS.verify(".".join(parts))


def test_swapped_payload_is_rejected() -> None:
    mine, theirs = TOKENS.issue(1).split("."), TOKENS.issue(2).split(".")
    with pytest.raises(Unauthenticated):
        TOKENS.verify(".".join([mine[0], theirs[1], mine[2]]))


@pytest.mark.filterwarnings("ignore:The HMAC key")
def test_unsigned_and_other_algorithm_tokens_are_rejected() -> None:
    exp = int(time.time()) + 600
    unsigned = jwt.encode({"sub": "1", "exp": exp}, key=None, algorithm="none")
    other_alg = signed({"sub": "1", "exp": exp}, algorithm="HS512")
    for token in (unsigned, other_alg):
        with pytest.raises(Unauthenticated):
            TOKENS.verify(token)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "1"},  # no expiry: would be valid forever
        {"exp": 4_000_000_000},  # nobody
        {"sub": "alice", "exp": 4_000_000_000},  # not a user id
        {"sub": "", "exp": 4_000_000_000},
        {"sub": 1, "exp": 4_000_000_000},  # not a string
        {"sub": "1", "exp": "tomorrow"},
    ],
    ids=["no-exp", "no-sub", "sub-not-int", "sub-empty", "sub-number", "exp-text"],
)
def test_correctly_signed_but_malformed_claims_are_rejected(claims: dict[str, object]) -> None:
    with pytest.raises(Unauthenticated):
        TOKENS.verify(signed(claims))


@pytest.mark.parametrize(
    "garbage",
    ["", "x", "a.b", "a.b.c", "....", "Bearer x.y.z", "\u00e9t\u00e9.\u00e9.\u00e9", "A" * 10_000],
)
def test_malformed_tokens_are_unauthenticated(garbage: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        TOKENS.verify(garbage)
    assert caught.value.code == "UNAUTHENTICATED"


@given(text=st.text(max_size=200))
def test_arbitrary_text_is_unauthenticated_never_a_crash(text: str) -> None:
    with pytest.raises(Unauthenticated):
        TOKENS.verify(text)


def test_verified_tokens_memory_is_bounded_and_forgetting_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "VERIFIED_TOKENS", 5)
    tokens = Tokens(SECRET, ttl_seconds=3600)
    issued = {uid: tokens.issue(uid) for uid in range(1, 30)}
    for _ in range(2):
        for uid, token in issued.items():
            assert tokens.verify(token) == uid
    assert len(tokens._verified) <= 5
    with pytest.raises(Unauthenticated):
        tokens.verify(issued[1] + "x")


def test_errors_are_feed_errors_with_safe_messages() -> None:
    for token in ("nonsense", Tokens(SECRET, ttl_seconds=-5).issue(3)):
        with pytest.raises(FeedError) as caught:
            TOKENS.verify(token)
        # The message is shown to clients: it must not echo the secret or the token.
        assert SECRET not in str(caught.value) and token not in str(caught.value)


# --- the cap on concurrent argon2 work --------------------------------------------------------


class HeldHasher(PasswordHasher):
    """A cheap hasher whose hash/verify, once armed, hold their thread until released, and
    which records how many ran at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.armed = False
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def _hold(self) -> None:
        if not self.armed:
            return
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.release.wait(10)
        with self.lock:
            self.running -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._hold()
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self._hold()
        return super().verify(hash, password)


async def until(condition: Callable[[], bool]) -> None:
    # The condition changes in worker threads, which cannot set an asyncio.Event: poll it.
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_argon2_runs_at_most_the_cap_at_once_and_refuses_past_the_line() -> None:
    hasher = HeldHasher()
    passwords = Passwords(hasher, concurrency=2, queue=3)
    hasher.armed = True
    # Unknown handles (no hash: the decoy) count like anyone else.
    tasks: list[asyncio.Task[object]] = [
        asyncio.create_task(passwords.verify(None, "password123")) for _ in range(5)
    ]
    tasks += [asyncio.create_task(passwords.hash("password123")) for _ in range(3)]
    await until(lambda: hasher.running == 2)
    refused = [t for t in tasks if t.done()]
    assert len(refused) == 3
    for task in refused:
        error = task.exception()
        assert isinstance(error, RateLimited) and error.retry_after == 1
    hasher.release.set()
    results = await asyncio.gather(*(t for t in tasks if t not in refused))
    assert hasher.peak == 2
    assert results.count(False) + sum(isinstance(r, str) for r in results) == 5


async def test_a_caller_gone_mid_hash_keeps_its_slot_until_the_work_ends() -> None:
    # A client disconnecting must not free a slot while its argon2 run still takes CPU.
    hasher = HeldHasher()
    passwords = Passwords(hasher, concurrency=1, queue=1)
    hasher.armed = True
    first = asyncio.create_task(passwords.verify(None, "password123"))
    await until(lambda: hasher.running == 1)
    first.cancel()
    second = asyncio.create_task(passwords.verify(None, "password123"))
    await asyncio.sleep(0.05)
    assert hasher.running == 1 and not second.done()  # still waiting for the first's thread
    with pytest.raises(RateLimited):
        await passwords.verify(None, "password123")  # line full
    hasher.release.set()
    assert await second is False
    assert hasher.peak == 1
    assert passwords.gate.busy == 0
