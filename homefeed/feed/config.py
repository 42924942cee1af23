"""Settings, read once from the environment and validated at start-up."""

from __future__ import annotations

import math
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from homefeed.feed.addresses import Network, parse_networks

PREFIX = "HOMEFEED_"


# Characters a token-signing secret needs at least, from the environment or the data dir.
MIN_SECRET = 16


class SettingsError(ValueError):
    """A setting is invalid; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".homefeed")
    host: str = "127.0.0.1"
    port: int = 8000
    jwt_secret: str | None = None
    celebrity_threshold: float = 100_000
    timeline_size: int = 800
    active_days: int = 7
    token_ttl_days: int = 30
    # Writes (mutations) a user may make per minute; 0 switches the limit off.
    rate_limit_per_minute: int = 600
    # Query and subscription operations per minute: a signed-in user's, an anonymous address's.
    query_rate_limit: int = 1200
    anonymous_rate_limit: int = 300
    # logIn attempts per 15 minutes: per (client address, handle), and per client address.
    log_in_limit: int = 10
    log_in_address_limit: int = 100
    # signUp attempts per client address per hour.
    sign_up_limit: int = 20
    # argon2 hashes and verifies one process runs at once, and callers allowed to wait for one.
    password_concurrency: int = 2
    password_queue: int = 16
    # Peers whose X-Forwarded-For is believed (docs/operations.md); none by default.
    trusted_proxies: tuple[Network, ...] = ()
    # Namespace for every Redis key and channel, so tests and tenants can share a server.
    redis_prefix: str = "hf"
    allowed_origins: tuple[str, ...] = ()
    # "hybrid" (timelines + pulled celebrities) or "pull" (PostgreSQL only: the reference, for benchmarks).
    feed_strategy: str = "hybrid"
    # How long a process reuses a pulled author's recent list before reading Redis again.
    celebrity_cache_ms: int = 500
    # How long the read path waits for Redis before answering from PostgreSQL instead.
    redis_read_timeout_ms: int = 250
    # After Redis fails on reads, how long they go straight to PostgreSQL before one probe.
    redis_breaker_ms: int = 1000
    # How long fan-out's writes (and a cluster's replication barrier) wait for Redis to take a step
    # before the job fails and is retried; the shared client's socket timeout is as long (5 s).
    redis_write_timeout_ms: int = 5000
    # Cold timelines one process rebuilds at a time; readers beyond it are answered from PostgreSQL.
    cold_rebuild_limit: int = 4
    # Followers per fan-out job; bigger follower lists are split so several workers share them.
    fanout_chunk: int = 10_000
    # Whether `homefeed serve` runs a fan-out worker inside each API process.
    inprocess_worker: bool = True
    # How long a claimed job stays invisible to other workers; a dead worker's jobs return after it.
    # Short, because a heartbeat renews it while the job runs (every third of it).
    job_lease_seconds: int = 3
    # Claims of one job before it moves to the dead-letter table (failed or abandoned each time).
    job_max_attempts: int = 10
    # Most objects one GraphQL operation may ask for, counted before it runs (docs/api.md, "Limits").
    query_cost_budget: int = 1000
    # Bytes of APQ documents one process keeps (hash and text); 0 answers PERSISTED_QUERY_NOT_SUPPORTED.
    apq_store_bytes: int = 2 * 1024 * 1024
    # A relay-compiler or Apollo manifest: when set, only its operations run.
    trusted_documents: Path | None = None
    # RANKED: how far back candidates go, and how long a first page's ranked order is kept for paging.
    ranked_window_hours: int = 72
    # Most candidates one RANKED first page scores (the newest within the window).
    ranked_candidates: int = 800
    ranked_snapshot_seconds: int = 1800
    # The learned ranking model's file (None: <data dir>/rank_model.json); the heuristic ranks without one.
    rank_model: Path | None = None
    # Share of served feed pages whose impressions are logged (percent), and most impressions queued.
    impression_sample_percent: int = 10
    impression_queue: int = 10_000
    # Streaming replicas of the database: reads that tolerate lag go there (docs/operations.md).
    database_replica_urls: tuple[str, ...] = ()
    # A replica further behind the primary than this is skipped.
    replica_max_lag_ms: int = 2000

    def with_(self, **changes: object) -> Settings:
        """A copy with some settings changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULTS = Settings()


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int | None = None) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be an integer, got {raw!r}") from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise SettingsError(f"{PREFIX}{name} must be {bound}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = (env.get(PREFIX + name) or default).strip().lower()
    if raw not in allowed:
        raise SettingsError(f"{PREFIX}{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


def _threshold(env: Mapping[str, str]) -> float:
    raw = env.get(PREFIX + "CELEBRITY_THRESHOLD")
    if raw is None or raw.strip() == "":
        return DEFAULTS.celebrity_threshold
    text = raw.strip().lower()
    if text in {"inf", "infinity", "none", "never"}:
        return math.inf
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise SettingsError(
            f"{PREFIX}CELEBRITY_THRESHOLD must be a non-negative integer or 'inf', got {raw!r}"
        ) from None
    if value < 0:
        raise SettingsError(f"{PREFIX}CELEBRITY_THRESHOLD must be >= 0, got {value}")
    return float(value)


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(PREFIX + name)
    if raw is None or raw.strip() == "":
        return None
    url = raw.strip()
    if not url.startswith(tuple(s + "://" for s in schemes)):
        raise SettingsError(f"{PREFIX}{name} must start with one of {schemes} (…://), got {url!r}")
    return url


def _redis_url(env: Mapping[str, str]) -> str | None:
    """One URL, or several comma-separated (a cluster's nodes, tried in turn at start-up)."""
    urls = _urls(env, "REDIS_URL", ("redis", "rediss", "unix", "valkey"))
    return ",".join(urls) if urls else None


def _urls(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(PREFIX + name, "")
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    for url in urls:
        if not url.startswith(tuple(s + "://" for s in schemes)):
            raise SettingsError(
                f"{PREFIX}{name}: each URL must start with one of {schemes} (…://), got {url!r}"
            )
    return urls


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(PREFIX + name)
    if raw is None or raw.strip() == "":
        return None
    path = Path(raw.strip())
    if not path.is_file():
        raise SettingsError(f"{PREFIX}{name} must name a readable file, got {raw!r}")
    return path


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every HOMEFEED_ setting; raise SettingsError naming the bad one."""
    env = os.environ if env is None else env
    secret = env.get(PREFIX + "JWT_SECRET") or None
    if secret is not None and len(secret.strip()) < MIN_SECRET:
        raise SettingsError(f"{PREFIX}JWT_SECRET must be at least {MIN_SECRET} characters")
    prefix = env.get(PREFIX + "REDIS_PREFIX", DEFAULTS.redis_prefix).strip()
    if not prefix or any(c in prefix for c in "{}: \t"):
        raise SettingsError(f"{PREFIX}REDIS_PREFIX must be non-empty, without braces, colons or spaces")
    origins = tuple(
        o.strip().rstrip("/") for o in env.get(PREFIX + "ALLOWED_ORIGINS", "").split(",") if o.strip()
    )
    strategy = _choice(env, "FEED_STRATEGY", DEFAULTS.feed_strategy, ("hybrid", "pull"))
    host = env.get(PREFIX + "HOST", DEFAULTS.host).strip()
    try:
        proxies = parse_networks(env.get(PREFIX + "TRUSTED_PROXIES", ""))
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}TRUSTED_PROXIES: {exc} (comma-separated IPs or CIDRs)") from None
    if not host:
        raise SettingsError(f"{PREFIX}HOST must not be empty")
    return Settings(
        database_url=_url(env, "DATABASE_URL", ("postgresql", "postgres")),
        redis_url=_redis_url(env),
        data_dir=Path(env.get(PREFIX + "DATA_DIR") or DEFAULTS.data_dir),
        host=host,
        port=_int(env, "PORT", DEFAULTS.port, 0, 65535),
        jwt_secret=secret,
        celebrity_threshold=_threshold(env),
        timeline_size=_int(env, "TIMELINE_SIZE", DEFAULTS.timeline_size, 1, 100_000),
        active_days=_int(env, "ACTIVE_DAYS", DEFAULTS.active_days, 1, 36_500),
        token_ttl_days=_int(env, "TOKEN_TTL_DAYS", DEFAULTS.token_ttl_days, 1, 3650),
        rate_limit_per_minute=_int(env, "RATE_LIMIT", DEFAULTS.rate_limit_per_minute, 0),
        query_rate_limit=_int(env, "QUERY_RATE_LIMIT", DEFAULTS.query_rate_limit, 0),
        anonymous_rate_limit=_int(env, "ANON_RATE_LIMIT", DEFAULTS.anonymous_rate_limit, 0),
        log_in_limit=_int(env, "LOGIN_RATE_LIMIT", DEFAULTS.log_in_limit, 0),
        log_in_address_limit=_int(env, "LOGIN_ADDRESS_RATE_LIMIT", DEFAULTS.log_in_address_limit, 0),
        sign_up_limit=_int(env, "SIGNUP_RATE_LIMIT", DEFAULTS.sign_up_limit, 0),
        password_concurrency=_int(env, "ARGON2_CONCURRENCY", DEFAULTS.password_concurrency, 1, 1024),
        password_queue=_int(env, "ARGON2_QUEUE", DEFAULTS.password_queue, 0, 100_000),
        trusted_proxies=proxies,
        redis_prefix=prefix,
        allowed_origins=origins,
        feed_strategy=strategy,
        celebrity_cache_ms=_int(env, "CELEBRITY_CACHE_MS", DEFAULTS.celebrity_cache_ms, 0, 60_000),
        redis_read_timeout_ms=_int(env, "REDIS_READ_TIMEOUT_MS", DEFAULTS.redis_read_timeout_ms, 10, 10_000),
        redis_breaker_ms=_int(env, "REDIS_BREAKER_MS", DEFAULTS.redis_breaker_ms, 10, 600_000),
        # Above the barrier's own WAIT (cluster_writer.REPLICA_WAIT_MS, 500 ms), which it must outlast.
        redis_write_timeout_ms=_int(
            env, "REDIS_WRITE_TIMEOUT_MS", DEFAULTS.redis_write_timeout_ms, 1000, 600_000
        ),
        cold_rebuild_limit=_int(env, "COLD_REBUILDS", DEFAULTS.cold_rebuild_limit, 1, 10_000),
        fanout_chunk=_int(env, "FANOUT_CHUNK", DEFAULTS.fanout_chunk, 100, 10_000_000),
        inprocess_worker=_choice(env, "INPROCESS_WORKER", "1", ("0", "1")) == "1",
        job_lease_seconds=_int(env, "JOB_LEASE_SECONDS", DEFAULTS.job_lease_seconds, 1, 3600),
        job_max_attempts=_int(env, "JOB_MAX_ATTEMPTS", DEFAULTS.job_max_attempts, 1, 1000),
        query_cost_budget=_int(env, "QUERY_COST_BUDGET", DEFAULTS.query_cost_budget, 1),
        apq_store_bytes=_int(env, "APQ_STORE_KB", DEFAULTS.apq_store_bytes // 1024, 0, 1024 * 1024) * 1024,
        trusted_documents=_file(env, "TRUSTED_DOCUMENTS"),
        ranked_window_hours=_int(env, "RANKED_WINDOW_HOURS", DEFAULTS.ranked_window_hours, 1, 24 * 30),
        ranked_candidates=_int(env, "RANKED_CANDIDATES", DEFAULTS.ranked_candidates, 1, 10_000),
        ranked_snapshot_seconds=_int(
            env, "RANKED_SNAPSHOT_SECONDS", DEFAULTS.ranked_snapshot_seconds, 1800, 7 * 86400
        ),
        rank_model=Path(env[PREFIX + "RANK_MODEL"]) if env.get(PREFIX + "RANK_MODEL", "").strip() else None,
        impression_sample_percent=_int(
            env, "IMPRESSION_SAMPLE_PERCENT", DEFAULTS.impression_sample_percent, 0, 100
        ),
        impression_queue=_int(env, "IMPRESSION_QUEUE", DEFAULTS.impression_queue, 0, 10_000_000),
        database_replica_urls=_urls(env, "DATABASE_REPLICA_URLS", ("postgresql", "postgres")),
        replica_max_lag_ms=_int(env, "REPLICA_MAX_LAG_MS", DEFAULTS.replica_max_lag_ms, 1, 3_600_000),
    )


def rank_model_path(settings: Settings) -> Path:
    """Where the ranking model file is (HOMEFEED_RANK_MODEL, else under the data dir)."""
    return settings.rank_model or settings.data_dir / "rank_model.json"


def jwt_secret(settings: Settings) -> str:
    """The token-signing secret: the setting, else one generated once and kept in the data dir.

    The file is created whole or not at all (written under a temporary name, then hard-linked
    into place, which fails if another process got there first), so no process ever reads a
    half-written or empty secret; a file that is nonetheless too short is refused, not used.
    """
    if settings.jwt_secret:
        return settings.jwt_secret
    path = settings.data_dir / "jwt_secret"
    try:
        return _checked_secret_file(path)
    except FileNotFoundError:
        pass
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd, tmp = tempfile.mkstemp(dir=settings.data_dir, prefix=".jwt_secret.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secret)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            # Two processes starting together: the first link wins and both use its secret.
            return _checked_secret_file(path)
    finally:
        os.unlink(tmp)
    return secret


def _checked_secret_file(path: Path) -> str:
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET:
        raise SettingsError(
            f"{path} holds a {len(secret)}-character secret, under the {MIN_SECRET} required: "
            f"delete it to have a new one generated (signing everyone out), or set {PREFIX}JWT_SECRET"
        )
    return secret
