"""The measured inputs of the capacity model, read from the JSON the benches write (`--json`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homefeed.capacity.model import Measured

DEFAULT_READ_JSON = Path("bench-results/read.json")
DEFAULT_FANOUT_JSON = Path("bench-results/fanout.json")


class MissingMeasurement(Exception):
    """A bench's JSON is missing or lacks a figure; the message says which and how to get it."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where each measured figure came from (a file and key, or a flag)."""

    figure: str
    value: float
    origin: str


def _load(path: Path, command: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise MissingMeasurement(f"{path} not found: run `{command} --json {path}`") from None
    except (OSError, ValueError) as exc:
        raise MissingMeasurement(f"{path} is not a bench's JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MissingMeasurement(f"{path} is not a bench's JSON object")
    return doc


def _number(doc: dict[str, Any], path: Path, *keys: str) -> float:
    value: Any = doc
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise MissingMeasurement(f"{path} has no {'.'.join(keys)}")
        value = value[key]
    if not isinstance(value, int | float) or value <= 0:
        raise MissingMeasurement(f"{path}: {'.'.join(keys)} is not a positive number ({value!r})")
    return float(value)


def measured(
    read_json: Path, fanout_json: Path, overrides: dict[str, float | None]
) -> tuple[Measured, list[Source]]:
    """The model's measured inputs: a flag's value where given, else the bench JSON's."""
    sources: list[Source] = []
    docs: dict[Path, dict[str, Any]] = {}

    def figure(name: str, path: Path, command: str, *keys: str) -> float:
        given = overrides.get(name)
        if given is not None:
            sources.append(Source(name, given, "flag"))
            return given
        if path not in docs:
            docs[path] = _load(path, command)
        value = _number(docs[path], path, *keys)
        sources.append(Source(name, value, f"{path}: {'.'.join(keys)}"))
        return value

    read, fanout = "homefeed bench read", "homefeed bench fanout"
    api = figure("api_cpu_ms_per_read", read_json, read, "hybrid", "server_cpu_ms_per_request")
    pg = figure("pg_cpu_ms_per_read", read_json, read, "hybrid", "postgres_cpu_ms_per_request")
    redis = figure("redis_cpu_ms_per_read", read_json, read, "hybrid", "redis_cpu_ms_per_request")
    writes = figure("fanout_writes_per_worker_s", fanout_json, fanout, "writes_per_s")
    entry = figure("bytes_per_entry", fanout_json, fanout, "bytes_per_entry")
    if sources[-1].origin != "flag" and "memory_cycle_rounds" not in docs[fanout_json]:
        # Before the bench measured a rewrite/append cycle, its bytes_per_entry was full timelines as
        # last written whole: about half of what a timeline holds while fan-out appends to it.
        raise MissingMeasurement(
            f"{fanout_json}: bytes_per_entry is from a bench before the steady-state figure (no"
            f" memory_cycle_rounds): rerun `{fanout} --json {fanout_json}` or give --bytes-per-entry"
        )
    if overrides.get("mean_followers") is not None:
        followers = figure("mean_followers", fanout_json, fanout)
    else:
        follows = figure("graph_follows", fanout_json, fanout, "graph_follows")
        users = figure("graph_users", fanout_json, fanout, "graph_users")
        followers = follows / users
        sources.append(Source("mean_followers", followers, "graph_follows / graph_users"))
    return Measured(api, pg, redis, writes, entry, followers), sources
