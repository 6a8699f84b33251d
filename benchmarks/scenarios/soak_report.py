"""The soak benchmark's samples and what is made of them: tables (text, Markdown, CSV), a plot.

Pure except for :func:`write_plot` (matplotlib, imported when it runs), so
tests/unit/test_soak_bench.py covers the figures and the formatting without a
broker.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.stats import percentile

MB = 1024 * 1024


@dataclass(frozen=True)
class ProcessReading:
    """One process at one sample: resident memory, open file descriptors, CPU seconds so far."""

    pid: int | None
    rss: int | None  # bytes; None once the process is gone
    fds: int | None
    cpu_s: float | None


@dataclass(frozen=True)
class Sample:
    """Everything read at one sample; latencies are of the notifications seen since the last."""

    t: float  # seconds since posting began
    phase: str  # "load" while posting, "drain" after it
    posted: int  # events handed to a request so far (the schedule: rate x t)
    acked: int  # events acknowledged (202) so far
    rate: float  # events acknowledged per second since the previous sample
    failed: int  # events given up on so far (after retries, or refused)
    retries: int  # requests sent again so far (503 or no answer)
    lag: int | None  # the worker group's uncommitted records (case-events + repartition)
    inbox_lag: int | None  # the inbox consumer's uncommitted notifications
    notifications: int  # notifications newly visible in the inbox in this window
    latencies_s: tuple[float, ...] = field(repr=False)
    processes: dict[str, ProcessReading] = field(default_factory=dict)

    @property
    def p50_ms(self) -> float | None:
        return quantile_ms(self.latencies_s, 0.50)

    @property
    def p99_ms(self) -> float | None:
        return quantile_ms(self.latencies_s, 0.99)


def quantile_ms(latencies_s: tuple[float, ...] | list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` of latencies given in seconds, in ms (None when empty)."""
    if not latencies_s:
        return None
    return round(percentile(sorted(latencies_s), q) * 1000, 1)


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits else f"{round(value)}"


def _mem(reading: ProcessReading | None) -> str:
    """``RSS MB/fds`` of one process, ``gone`` when it no longer ran."""
    if reading is None or reading.rss is None:
        return "gone"
    return f"{reading.rss / MB:.0f}/{_num(reading.fds)}"


def process_names(samples: list[Sample]) -> list[str]:
    """Every process seen in any sample, in the order first seen."""
    names: list[str] = []
    for sample in samples:
        names.extend(name for name in sample.processes if name not in names)
    return names


FLOW_HEADER = ["t (s)", "phase", "posted", "acked", "ev/s", "failed", "retries", "lag", "inbox lag",
               "notif.", "p50 ms", "p99 ms"]


def flow_rows(samples: list[Sample]) -> list[list[str]]:
    """One row per sample: the load, the lags and the publish->inbox latency."""
    return [[f"{s.t:.0f}", s.phase, str(s.posted), str(s.acked), f"{s.rate:.1f}", str(s.failed),
             str(s.retries), _num(s.lag), _num(s.inbox_lag), str(s.notifications),
             _num(s.p50_ms, 1), _num(s.p99_ms, 1)] for s in samples]


def process_rows(samples: list[Sample], names: list[str]) -> list[list[str]]:
    """One row per sample: ``RSS MB/open fds`` of each process."""
    return [[f"{s.t:.0f}", *(_mem(s.processes.get(name)) for name in names)] for s in samples]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns right-aligned to their widest cell, for the terminal."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, *rows]
    out = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
           for line in lines]
    out.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(out)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---:" for _ in header) + "|",
                      *(line(row) for row in rows)])


def csv_text(samples: list[Sample], names: list[str]) -> str:
    """Every sample as one CSV row: the flow figures, then rss_mb, fds, cpu_s per process."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["t_s", "phase", "posted", "acked", "events_per_s", "failed", "retries", "lag",
                     "inbox_lag", "notifications", "p50_ms", "p99_ms",
                     *(f"{name}_{what}" for name in names for what in ("rss_mb", "fds", "cpu_s"))])
    for s in samples:
        cells: list[Any] = [round(s.t, 1), s.phase, s.posted, s.acked, round(s.rate, 2), s.failed,
                            s.retries, s.lag, s.inbox_lag, s.notifications, s.p50_ms, s.p99_ms]
        for name in names:
            reading = s.processes.get(name)
            cells += ([None] * 3 if reading is None or reading.rss is None else
                      [round(reading.rss / MB, 1), reading.fds,
                       None if reading.cpu_s is None else round(reading.cpu_s, 1)])
        writer.writerow(["" if cell is None else cell for cell in cells])
    return buffer.getvalue()


def summary(samples: list[Sample], overall_s: list[float]) -> dict[str, Any]:
    """The figures to quote: RSS first/last/max per process, lag, latency over the whole run."""
    per_process: dict[str, dict[str, float | None]] = {}
    for name in process_names(samples):
        rss = [s.processes[name].rss for s in samples
               if name in s.processes and s.processes[name].rss is not None]
        fds = [s.processes[name].fds for s in samples
               if name in s.processes and s.processes[name].fds is not None]
        mb = [value / MB for value in rss if value is not None]
        per_process[name] = {
            "rss_first_mb": round(mb[0], 1) if mb else None,
            "rss_last_mb": round(mb[-1], 1) if mb else None,
            "rss_max_mb": round(max(mb), 1) if mb else None,
            "fds_first": fds[0] if fds else None, "fds_last": fds[-1] if fds else None,
            "fds_max": max(v for v in fds if v is not None) if fds else None,
        }
    lags = [s.lag for s in samples if s.lag is not None]
    inbox = [s.inbox_lag for s in samples if s.inbox_lag is not None]
    return {
        "processes": per_process,
        "lag_max": max(lags) if lags else None, "lag_last": lags[-1] if lags else None,
        "inbox_lag_max": max(inbox) if inbox else None,
        "latency": {"count": len(overall_s), "p50_ms": quantile_ms(overall_s, 0.50),
                    "p99_ms": quantile_ms(overall_s, 0.99),
                    "max_ms": round(max(overall_s) * 1000, 1) if overall_s else None},
    }


def markdown_report(title: str, facts: list[str], samples: list[Sample]) -> str:
    """The results file: what ran, the flow table and the process table."""
    names = process_names(samples)
    return "\n\n".join([
        f"# {title}", "\n".join(f"- {fact}" for fact in facts),
        "## Load, lag and publish->inbox latency per sample",
        markdown_table(FLOW_HEADER, flow_rows(samples)),
        "## Resident memory (MB) / open file descriptors per process",
        markdown_table(["t (s)", *names], process_rows(samples, names)),
    ]) + "\n"


def write_plot(path: Path, samples: list[Sample], title: str) -> None:
    """RSS of each process, the lags and the latency percentiles over time, as a PNG."""
    import matplotlib  # noqa: PLC0415 (only the plot needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    minutes = [s.t / 60 for s in samples]
    figure, (rss_ax, lag_ax, lat_ax) = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    for name in process_names(samples):
        values = [s.processes[name].rss / MB if name in s.processes
                  and s.processes[name].rss is not None else float("nan") for s in samples]
        rss_ax.plot(minutes, values, marker=".", label=name)
    rss_ax.set_ylabel("RSS (MB)")
    rss_ax.legend(loc="upper left", fontsize="small", ncol=3)
    for label, values in (("worker group lag", [s.lag for s in samples]),
                          ("inbox consumer lag", [s.inbox_lag for s in samples])):
        lag_ax.plot(minutes, [float("nan") if v is None else v for v in values], marker=".",
                    label=label)
    lag_ax.set_ylabel("records behind")
    lag_ax.legend(loc="upper left", fontsize="small")
    for label, values in (("p50", [s.p50_ms for s in samples]),
                          ("p99", [s.p99_ms for s in samples])):
        lat_ax.plot(minutes, [float("nan") if v is None else v for v in values], marker=".",
                    label=label)
    lat_ax.set_ylabel("publish->inbox (ms)")
    lat_ax.set_xlabel("minutes since posting began")
    lat_ax.legend(loc="upper left", fontsize="small")
    for ax in (rss_ax, lag_ax, lat_ax):
        ax.grid(visible=True, alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
