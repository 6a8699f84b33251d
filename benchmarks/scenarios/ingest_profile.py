"""Where the ingest server's event loop spends its time, from its cProfile file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.profiles import read_profile, share_cell, share_of_busy

CATEGORIES = (
    ("/advisering/privacy.py", "advisering.privacy (CPR scan, HMAC)"),
    ("/advisering/edge/", "advisering.edge"),
    ("/advisering/events.py", "advisering.events"),
    ("/advisering/http/", "advisering.http (handler)"),
    ("/advisering/kafka/", "advisering.kafka (AsyncProducer)"),
    ("/advisering/", "advisering (other)"),
    ("/pydantic", "pydantic"),
    ("/copy.py", "copy.deepcopy"),
    ("/aiohttp/", "aiohttp"),
    ("/multidict/", "aiohttp"),
    ("/yarl/", "aiohttp"),
    ("/asyncio/", "asyncio"),
    ("/prometheus_client/", "prometheus_client"),
    ("/structlog/", "structlog"),
    ("/re/", "re"),
    ("/hmac.py", "hmac"),
)


# In the builtins ("~"): by the function's name.
BUILTIN_CATEGORIES = (
    ("orjson", "orjson"), ("pydantic", "pydantic"), ("validate", "pydantic"),
    ("Producer", "confluent_kafka"), ("re.Pattern", "re"), ("hmac", "hmac"),
    ("_hashlib", "hmac"), ("base64", "base64"), ("deepcopy", "copy.deepcopy"),
    ("socket", "socket I/O"), ("send", "socket I/O"), ("recv", "socket I/O"),
)


def summarise_profile(path: Path, events: int, top: int) -> dict[str, Any]:
    read = read_profile(path, CATEGORIES, BUILTIN_CATEGORIES, top,
                        r"advisering|web_protocol|web_app|copy")
    busy = read.busy
    table = {name: {"seconds": round(sec, 3),
                    "us_per_event": round(sec / events * 1e6, 1),
                    "share_of_busy": share_of_busy(name, sec, busy)}
             for name, sec in read.by_category.most_common()}
    return {"events": events, "busy_s": round(busy, 3),
            "busy_us_per_event": round(busy / events * 1e6, 1), "by_category": table,
            "top_tottime": read.top_tottime, "cumulative_selected": read.cumulative_selected}


def print_profile(title: str, summary: dict[str, Any]) -> None:
    print(f"\n--- cProfile of the server's event loop, {title}: busy {summary['busy_s']} s "
          f"= {summary['busy_us_per_event']} us/event (profiled, so inflated) ---")
    for name, row in summary["by_category"].items():
        print(f"  {name:40s} {row['seconds']:8.3f} s {row['us_per_event']:8.1f} us/ev  "
              f"{share_cell(row)}")
