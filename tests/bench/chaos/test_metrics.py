"""homefeed.bench.chaos.metrics: what the run keeps of a /metrics page."""

from __future__ import annotations

from homefeed.bench.chaos.metrics import headline, parse

PAGE = """# HELP homefeed_jobs_total Outbox jobs handled.
# TYPE homefeed_jobs_total counter
homefeed_jobs_total{kind="post",outcome="done"} 12.0
homefeed_jobs_total{kind="post",outcome="dead"} 1.0
homefeed_jobs_created{kind="post",outcome="done"} 1.7e9
# HELP homefeed_outbox_jobs Jobs waiting.
# TYPE homefeed_outbox_jobs gauge
homefeed_outbox_jobs 3.0
# HELP python_gc_objects_collected_total Objects collected.
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 5.0
"""


def test_parse_keeps_the_projects_samples_with_their_labels() -> None:
    assert parse(PAGE) == {
        'homefeed_jobs_total{kind="post",outcome="done"}': 12.0,
        'homefeed_jobs_total{kind="post",outcome="dead"}': 1.0,
        "homefeed_outbox_jobs": 3.0,
    }


def test_headline_sums_a_series_over_its_labels() -> None:
    samples = parse(PAGE) | {
        'homefeed_live_resyncs_total{x="a"}': 2.0,
        'homefeed_live_resyncs_total{x="b"}': 3.0,
    }
    assert headline(samples) == {"homefeed_outbox_jobs": 3.0, "homefeed_live_resyncs_total": 5.0}
