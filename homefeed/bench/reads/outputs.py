"""The read bench's files: JSON, the markdown table and the chart, where the options say."""

from __future__ import annotations

from pathlib import Path

import orjson

from homefeed.bench.reads import chart
from homefeed.bench.reads.options import ReadOptions
from homefeed.bench.reads.report import ReadReport


def write_outputs(report: ReadReport, options: ReadOptions) -> list[Path]:
    """The JSON, markdown and PNG files the options name; returns the paths written."""
    written: list[Path] = []
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
        written.append(options.json_path)
    if options.markdown_path is not None:
        options.markdown_path.parent.mkdir(parents=True, exist_ok=True)
        options.markdown_path.write_text(report.markdown())
        written.append(options.markdown_path)
    if options.chart_path is not None:
        chart.draw(report, options.chart_path)
        written.append(options.chart_path)
    return written
