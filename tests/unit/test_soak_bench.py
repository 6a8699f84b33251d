"""The soak benchmark's pure parts: /proc readings, percentiles, the latency probe, the tables."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import sqlite3
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from harness.procfs import open_fds, rss_bytes
from scenarios.soak_inbox import InboxWatch
from scenarios.soak_post import by_source
from scenarios.soak_report import (
    FLOW_HEADER,
    MB,
    ProcessReading,
    Sample,
    csv_text,
    flow_rows,
    markdown_report,
    markdown_table,
    process_names,
    process_rows,
    quantile_ms,
    summary,
    text_table,
)


def sample(t: float, rss_mb: float | None, latencies: tuple[float, ...] = (),
           lag: int | None = 0) -> Sample:
    reading = ProcessReading(1, None if rss_mb is None else int(rss_mb * MB), 12, 1.5)
    return Sample(t, "load", int(t * 200), int(t * 200), 200.0, 0, 1, lag, 0, len(latencies),
                  latencies, {"serve": reading, "worker-1": ProcessReading(2, 50 * MB, 30, None)})


def test_rss_and_fds_of_this_process_come_from_proc() -> None:
    """The current process's RSS is positive and an opened file adds one descriptor."""
    rss = rss_bytes(os.getpid())
    assert rss is not None
    assert 1 * MB < rss < 64 * 1024 * MB
    before = open_fds(os.getpid())
    assert before is not None
    with Path(__file__).open("rb"):
        assert open_fds(os.getpid()) == before + 1


def test_proc_readings_of_a_process_that_is_gone_are_none() -> None:
    """A pid with no /proc entry (or none given) reads as None, never as 0."""
    assert rss_bytes(None) is None
    assert open_fds(None) is None
    assert rss_bytes(2**22 + 12345) is None
    assert open_fds(2**22 + 12345) is None


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    """p50 and p99 of 1..100 ms are 50 and 99 ms; an empty window has none."""
    latencies = [i / 1000 for i in range(100, 0, -1)]
    assert quantile_ms(latencies, 0.50) == 50.0
    assert quantile_ms(latencies, 0.99) == 99.0
    assert quantile_ms([0.25], 0.99) == 250.0
    assert quantile_ms([], 0.5) is None
    assert sample(30, 100, (0.1, 0.2, 0.3)).p50_ms == 200.0


def test_tables_have_one_row_per_sample_and_mark_a_gone_process() -> None:
    """Flow and process tables line up; a process without RSS shows as gone."""
    samples = [sample(0, 100), sample(30, 120, (0.05,)), sample(60, None, lag=None)]
    names = process_names(samples)
    assert names == ["serve", "worker-1"]
    rows = process_rows(samples, names)
    assert rows[0] == ["0", "100/12", "50/30"]
    assert rows[2][1] == "gone"
    flow = flow_rows(samples)
    assert len(flow) == 3
    assert all(len(row) == len(FLOW_HEADER) for row in flow)
    assert flow[2][FLOW_HEADER.index("lag")] == "-"
    assert flow[1][FLOW_HEADER.index("p50 ms")] == "50.0"
    text = text_table(FLOW_HEADER, flow).splitlines()
    assert len(text) == 5
    assert len({len(line) for line in text}) == 1  # every line as wide as the header


def test_markdown_and_csv_carry_every_sample() -> None:
    """The Markdown report holds both tables; the CSV has a column set per process."""
    samples = [sample(0, 100), sample(30, 130, (0.01, 0.02))]
    table = markdown_table(["a", "b|c"], [["1", "2"]]).splitlines()
    assert table == ["| a | b\\|c |", "|---:|---:|", "| 1 | 2 |"]
    report = markdown_report("Soak", ["rate 200"], samples)
    assert report.startswith("# Soak")
    assert report.count("\n| 30 |") == 2  # a row in each table
    rows = list(csv.DictReader(io.StringIO(csv_text(samples, process_names(samples)))))
    assert [row["serve_rss_mb"] for row in rows] == ["100.0", "130.0"]
    assert rows[1]["worker-1_cpu_s"] == ""
    assert rows[1]["p99_ms"] == "20.0"


def test_summary_reports_rss_growth_lag_and_overall_latency() -> None:
    """First, last and max RSS per process, the largest lag and run-wide percentiles."""
    samples = [sample(0, 100, lag=0), sample(30, 150, lag=40), sample(60, 140, lag=3)]
    figures = summary(samples, [0.1, 0.2, 0.3, 0.4])
    assert figures["processes"]["serve"]["rss_first_mb"] == 100.0
    assert figures["processes"]["serve"]["rss_last_mb"] == 140.0
    assert figures["processes"]["serve"]["rss_max_mb"] == 150.0
    assert figures["lag_max"] == 40
    assert figures["lag_last"] == 3
    assert figures["latency"] == {"count": 4, "p50_ms": 200.0, "p99_ms": 400.0, "max_ms": 400.0}


def test_inbox_watch_measures_from_the_202_and_waits_for_a_late_ack(tmp_path: Path) -> None:
    """A row's latency runs from its trigger's 202 (split at its created); one seen early is 0."""
    db = sqlite3.connect(tmp_path / "inbox.sqlite3")
    db.execute("CREATE TABLE notifications (id TEXT PRIMARY KEY, body BLOB NOT NULL)")

    def add(notification_id: str, trigger: str) -> None:
        created = dt.datetime.fromtimestamp(time.time() - 0.5, dt.UTC).isoformat()
        body = orjson.dumps({"id": notification_id, "trigger": {"event_id": trigger},
                             "created": created})
        db.execute("INSERT INTO notifications VALUES (?, ?)", (notification_id, body))
        db.commit()

    acks = {"e1": time.time() - 2.0}
    watch = InboxWatch(tmp_path / "inbox.sqlite3", acks)
    add("n1", "e1")
    add("n2", "e2")  # its 202 has not been handled yet
    assert watch.read_new(db) == 2
    window = watch.take_window()
    assert len(window) == 1
    assert 1.9 < window[0] < 10
    to_created, to_visible = watch.parts()
    assert 1.4 < to_created[0] < 1.6
    assert 0.4 < to_visible[0] < 10
    acks["e2"] = time.time()
    assert watch.read_new(db) == 0
    assert watch.take_window() == [0.0]
    assert watch.seen_before_ack == 1
    add("n3", "never-acked")
    watch.read_new(db)
    watch.flush_pending()
    assert watch.unmatched == 1
    assert watch.seen == 3
    assert len(watch.all_latencies()) == 2


def test_events_are_grouped_by_source_in_order() -> None:
    """One request per source system, each with its events in the simulator's order."""
    events = [{"id": "1", "source": "dubu"}, {"id": "2", "source": "cpr"},
              {"id": "3", "source": "dubu"}]
    assert by_source(events) == {"dubu": [events[0], events[2]], "cpr": [events[1]]}
