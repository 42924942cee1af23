"""Settings: every one parsed from the environment; a bad one fails naming itself."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from homefeed.feed import config
from homefeed.feed.config import DEFAULTS, SettingsError


def test_defaults_when_nothing_is_set() -> None:
    assert config.load({}) == DEFAULTS
    assert DEFAULTS.celebrity_threshold == 100_000
    assert DEFAULTS.timeline_size == 800
    assert DEFAULTS.active_days == 7
    assert (DEFAULTS.host, DEFAULTS.port) == ("127.0.0.1", 8000)


def test_every_setting_is_parsed() -> None:
    env = {
        "HOMEFEED_DATABASE_URL": " postgresql://u:p@db:5432/hf ",
        "HOMEFEED_REDIS_URL": "redis://cache:6379/1",
        "HOMEFEED_DATA_DIR": "/var/lib/homefeed",
        "HOMEFEED_HOST": "0.0.0.0",
        "HOMEFEED_PORT": "9000",
        "HOMEFEED_JWT_SECRET": "s" * 32,
        "HOMEFEED_CELEBRITY_THRESHOLD": "10_000",
        "HOMEFEED_TIMELINE_SIZE": "500",
        "HOMEFEED_ACTIVE_DAYS": "3",
        "HOMEFEED_TOKEN_TTL_DAYS": "2",
        "HOMEFEED_RATE_LIMIT": "0",
        "HOMEFEED_REDIS_PREFIX": "tenant1",
        "HOMEFEED_ALLOWED_ORIGINS": "https://a.example/, https://b.example",
        "HOMEFEED_FEED_STRATEGY": "pull",
        "HOMEFEED_REDIS_WRITE_TIMEOUT_MS": "2500",
    }
    s = config.load(env)
    assert s.database_url == "postgresql://u:p@db:5432/hf"
    assert s.redis_url == "redis://cache:6379/1"
    assert s.data_dir == Path("/var/lib/homefeed")
    assert s.host == "0.0.0.0"
    assert s.port == 9000
    assert s.jwt_secret == "s" * 32
    assert s.celebrity_threshold == 10_000
    assert s.timeline_size == 500
    assert s.active_days == 3
    assert s.token_ttl_days == 2
    assert s.rate_limit_per_minute == 0
    assert s.redis_prefix == "tenant1"
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert s.feed_strategy == "pull"
    assert s.redis_write_timeout_ms == 2500


@pytest.mark.parametrize("raw", ["inf", "Infinity", "never"])
def test_threshold_can_be_infinite(raw: str) -> None:
    assert config.load({"HOMEFEED_CELEBRITY_THRESHOLD": raw}).celebrity_threshold == math.inf


def test_threshold_zero_means_everyone_is_pulled() -> None:
    assert config.load({"HOMEFEED_CELEBRITY_THRESHOLD": "0"}).celebrity_threshold == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://db/hf"),
        ("DATABASE_URL", "db:5432"),
        ("REDIS_URL", "http://cache"),
        ("HOST", "   "),
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("PORT", "-1"),
        ("JWT_SECRET", "short"),
        ("CELEBRITY_THRESHOLD", "-5"),
        ("CELEBRITY_THRESHOLD", "lots"),
        ("CELEBRITY_THRESHOLD", "1.5"),
        ("TIMELINE_SIZE", "0"),
        ("TIMELINE_SIZE", "big"),
        ("ACTIVE_DAYS", "-1"),
        ("ACTIVE_DAYS", "7d"),
        ("TOKEN_TTL_DAYS", "0"),
        ("RATE_LIMIT", "-3"),
        ("REDIS_PREFIX", "a:b"),
        ("REDIS_PREFIX", "{x}"),
        ("REDIS_PREFIX", "   "),
        # The read bench's in-memory baseline is the bench's own app, not a strategy of the service.
        ("FEED_STRATEGY", "floor"),
        ("FEED_STRATEGY", "baseline"),
        # Shorter than a replication barrier's own WAIT (500 ms) would fail every barrier.
        ("REDIS_WRITE_TIMEOUT_MS", "500"),
    ],
)
def test_invalid_setting_names_itself(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"HOMEFEED_{name}"):
        config.load({f"HOMEFEED_{name}": value})


def test_jwt_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    s = DEFAULTS.with_(data_dir=tmp_path / "data")
    first = config.jwt_secret(s)
    assert len(first) >= 32
    assert config.jwt_secret(s) == first
    assert config.jwt_secret(s.with_(jwt_secret="given-" + "x" * 20)) == "given-" + "x" * 20


@pytest.mark.parametrize("content", ["", "   \n", "short", "x" * 15])
def test_a_secret_file_too_short_is_refused_not_used(tmp_path: Path, content: str) -> None:
    s = DEFAULTS.with_(data_dir=tmp_path)
    (tmp_path / "jwt_secret").write_text(content)
    with pytest.raises(SettingsError, match="jwt_secret"):
        config.jwt_secret(s)


def test_the_environment_secret_counts_characters_after_trimming() -> None:
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        config.load({"HOMEFEED_JWT_SECRET": " " * 10 + "x" * 15})


def test_processes_starting_together_agree_on_one_whole_secret(tmp_path: Path) -> None:
    # Each process writes its candidate under a temporary name and links it into place: the
    # first link wins, and nobody ever reads an empty or partial file.
    s = DEFAULTS.with_(data_dir=tmp_path / "data")
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = set(pool.map(lambda _: config.jwt_secret(s), range(32)))
    assert len(found) == 1
    (secret,) = found
    assert len(secret) >= 32
    assert (tmp_path / "data" / "jwt_secret").read_text() == secret
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["jwt_secret"]  # no temporary left


def test_persisted_operation_settings(tmp_path: Path) -> None:
    manifest = tmp_path / "persisted.json"
    manifest.write_text("{}")
    s = config.load({"HOMEFEED_APQ_STORE_KB": "64", "HOMEFEED_TRUSTED_DOCUMENTS": str(manifest)})
    assert s.apq_store_bytes == 64 * 1024
    assert s.trusted_documents == manifest
    assert config.load({"HOMEFEED_APQ_STORE_KB": "0"}).apq_store_bytes == 0


def test_limit_settings_are_parsed_and_checked() -> None:
    s = config.load(
        {
            "HOMEFEED_QUERY_RATE_LIMIT": "50",
            "HOMEFEED_ANON_RATE_LIMIT": "0",
            "HOMEFEED_LOGIN_RATE_LIMIT": "3",
            "HOMEFEED_LOGIN_ADDRESS_RATE_LIMIT": "30",
            "HOMEFEED_SIGNUP_RATE_LIMIT": "5",
            "HOMEFEED_ARGON2_CONCURRENCY": "4",
            "HOMEFEED_ARGON2_QUEUE": "0",
            "HOMEFEED_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        }
    )
    assert (s.query_rate_limit, s.anonymous_rate_limit, s.log_in_limit) == (50, 0, 3)
    assert (s.log_in_address_limit, s.sign_up_limit) == (30, 5)
    assert (s.password_concurrency, s.password_queue) == (4, 0)
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    assert DEFAULTS.trusted_proxies == ()  # X-Forwarded-For is never believed by default


@pytest.mark.parametrize(
    ("name", "value"),
    [("APQ_STORE_KB", "-1"), ("APQ_STORE_KB", "lots"), ("TRUSTED_DOCUMENTS", "/nonexistent/manifest.json")],
)
def test_invalid_persisted_operation_setting_names_itself(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"HOMEFEED_{name}"):
        config.load({f"HOMEFEED_{name}": value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUERY_RATE_LIMIT", "-1"),
        ("ANON_RATE_LIMIT", "lots"),
        ("LOGIN_RATE_LIMIT", "-3"),
        ("LOGIN_ADDRESS_RATE_LIMIT", "1.5"),
        ("SIGNUP_RATE_LIMIT", "x"),
        ("ARGON2_CONCURRENCY", "0"),
        ("ARGON2_QUEUE", "-1"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.example"),
    ],
)
def test_bad_limit_settings_name_themselves(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"HOMEFEED_{name}"):
        config.load({f"HOMEFEED_{name}": value})
