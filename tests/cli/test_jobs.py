"""`homefeed jobs`: dead jobs listed, retried back into the outbox with no attempts spent, dropped."""

from __future__ import annotations

import io

import pytest

from homefeed.cli.jobs import drop_dead, list_dead, retry_dead, run
from homefeed.cli.main import parser
from homefeed.feed.config import Settings
from homefeed.feed.services import Services
from homefeed.feed.store.outbox import DELETE, POST, Outbox
from homefeed.workers.fanout_worker import FanoutWorker


async def bury(services: Services, kind: str, subject: int, error: str) -> int:
    outbox = Outbox(services.pool, lease_seconds=30)
    await outbox.enqueue(kind, 7, subject)
    (job,) = await outbox.claim(1)
    assert await outbox.bury(job, error)
    return job.id


async def test_list_shows_each_dead_job_with_its_last_error(services: Services) -> None:
    out = io.StringIO()
    assert await list_dead(services.pool, out) == 0
    assert out.getvalue() == "no dead jobs\n"
    first = await bury(
        services, POST, 42, "Traceback (most recent call last):\n  ...\nValueError: bad post 42\n"
    )
    second = await bury(services, DELETE, 43, "x" * 500)
    out = io.StringIO()
    assert await list_dead(services.pool, out, full=True) == 0
    text = out.getvalue()
    rows = text.splitlines()
    assert rows[0].split() == ["id", "kind", "actor", "subject", "attempts", "died", "last", "error"]
    assert rows[1].split()[:5] == [str(first), POST, "7", "42", "1"]
    assert rows[1].endswith("ValueError: bad post 42")
    assert rows[2].split()[:5] == [str(second), DELETE, "7", "43", "1"]
    assert len(rows[2]) < 200  # a long error is cut in the table ...
    assert "x" * 500 in text  # ... and whole with --full
    assert "Traceback (most recent call last):" in text
    assert rows[-1] == "2 dead job(s)"


async def test_retry_puts_dead_jobs_back_with_no_attempts_spent_and_a_worker_does_them(
    services: Services,
) -> None:
    post = await services.posts.create((await services.users.create("a", "a", "x")).id, "hello")
    await services.pool.execute("DELETE FROM outbox")
    outbox = Outbox(services.pool, lease_seconds=30)
    await outbox.enqueue(POST, post.author_id, post.id)
    (job,) = await outbox.claim(1)
    await services.pool.execute("UPDATE outbox SET attempts = 10 WHERE id = $1", job.id)
    assert await outbox.bury(job, "boom")
    other = await bury(services, DELETE, 1, "boom")
    out = io.StringIO()
    assert await retry_dead(services.pool, [job.id, 999_999], out) == 1  # one id was not dead
    assert "retried 1 job(s)" in out.getvalue() and "999999" in out.getvalue()
    row = await services.pool.fetchrow(
        "SELECT id, kind, attempts, available_at <= now() AS ready FROM outbox"
    )
    assert row is not None and (row["id"], row["kind"], row["attempts"], row["ready"]) == (
        job.id,
        POST,
        0,
        True,
    )
    assert [r["id"] for r in await services.pool.fetch("SELECT id FROM dead_jobs")] == [other]
    await FanoutWorker(services).drain()
    assert await services.pool.fetchval("SELECT count(*) FROM outbox") == 0
    out = io.StringIO()
    assert await retry_dead(services.pool, None, out) == 0
    assert out.getvalue() == f"retried 1 job(s): {other}\n"
    assert await services.pool.fetchval("SELECT count(*) FROM dead_jobs") == 0


async def test_drop_forgets_only_the_named_dead_jobs_or_all(services: Services) -> None:
    ids = [await bury(services, POST, n, "boom") for n in range(3)]
    out = io.StringIO()
    assert await drop_dead(services.pool, [ids[1]], out) == 0
    assert out.getvalue() == f"dropped 1 job(s): {ids[1]}\n"
    assert [r["id"] for r in await services.pool.fetch("SELECT id FROM dead_jobs ORDER BY id")] == [
        ids[0],
        ids[2],
    ]
    assert await drop_dead(services.pool, [ids[1]], io.StringIO()) == 1  # already gone
    assert await drop_dead(services.pool, None, io.StringIO()) == 0
    assert await services.pool.fetchval("SELECT count(*) FROM dead_jobs") == 0
    assert await services.pool.fetchval("SELECT count(*) FROM outbox") == 0  # dropping never requeues


@pytest.mark.parametrize(
    "argv",
    [
        ["jobs", "list"],
        ["jobs", "list", "--full"],
        ["jobs", "retry", "1", "2"],
        ["jobs", "retry", "--all"],
        ["jobs", "drop", "3"],
        ["jobs", "drop", "--all"],
    ],
)
def test_every_jobs_command_parses(argv: list[str]) -> None:
    assert callable(parser().parse_args(argv).run)


def test_retry_and_drop_need_ids_or_all_but_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["jobs", "retry"], ["jobs", "drop", "1", "--all"]):
        assert run(Settings(), parser().parse_args(argv)) == 2
    assert "give job ids or --all" in capsys.readouterr().err
