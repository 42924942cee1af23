"""What a round of timeline writes cost the servers: CPU, commands and replication bytes per write.

Read from each server's INFO before and after the round (process CPU, user + system, as
/proc reports it; commands served; the replication offset), so it works for any server the
bench can reach. A server others use at the same time (the configured Redis on a shared
machine) is charged for their commands too: its commands per write show it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Sample:
    cpu: float  # seconds of CPU the server process has used
    calls: int  # commands it has served
    offset: int  # its replication offset (bytes of the replication stream)


@dataclass(frozen=True, slots=True)
class Cost:
    """Per timeline write, over a group of servers (a side's masters, or its replicas)."""

    cpu_us: float
    commands: float
    repl_bytes: float


async def sample(client: Redis) -> Sample:
    cpu = await client.info("cpu")
    stats = await client.info("commandstats")
    replication = await client.info("replication")
    calls = sum(int(v["calls"]) for v in stats.values() if isinstance(v, dict))
    return Sample(
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        calls,
        int(replication.get("master_repl_offset", 0)),
    )


async def samples(clients: Sequence[Redis]) -> list[Sample]:
    return [await sample(c) for c in clients]


def cost(before: Sequence[Sample], after: Sequence[Sample], writes: int, *, stream: bool = True) -> Cost:
    """The group's summed cost per write between two samples of each of its servers.

    stream: count the replication stream's bytes (a master's); a replica's offset follows its
    master's, so counting it again would double the figure.
    """
    cpu = sum(a.cpu - b.cpu for b, a in zip(before, after, strict=True))
    calls = sum(a.calls - b.calls for b, a in zip(before, after, strict=True))
    offset = sum(a.offset - b.offset for b, a in zip(before, after, strict=True)) if stream else 0
    # The INFO calls that took the samples are commands too: three per server, not the round's.
    calls -= 3 * len(before)
    return Cost(cpu * 1e6 / writes, calls / writes, offset / writes)


def median(costs: Sequence[Cost]) -> Cost:
    """Each figure's median over rounds."""
    return Cost(
        statistics.median(c.cpu_us for c in costs),
        statistics.median(c.commands for c in costs),
        statistics.median(c.repl_bytes for c in costs),
    )


def as_dict(costs: Mapping[str, Cost]) -> dict[str, dict[str, float]]:
    return {
        name: {"cpu_us": c.cpu_us, "commands": c.commands, "repl_bytes": c.repl_bytes}
        for name, c in costs.items()
    }
