"""A minimal Faust app with a table, run as a real worker by test_faust_on_broker.

It counts values per key in a table (memory store, changelog topic) and sends
"value:count" on. Test code, so it may read its topic names from os.environ.
"""

from __future__ import annotations

import os

import faust

SUFFIX = os.environ["PROBE_SUFFIX"]
app = faust.App(
    f"probe-{SUFFIX}",
    broker=f"kafka://{os.environ['PROBE_BOOTSTRAP']}",
    store="memory://",
    topic_partitions=2,
    topic_replication_factor=1,
    web_host="127.0.0.1",
    web_port=int(os.environ["PROBE_WEB_PORT"]),
    datadir=os.environ["PROBE_DATADIR"],
)
source = app.topic(f"probe-in-{SUFFIX}", value_serializer="raw", key_serializer="raw")
sink = app.topic(f"probe-out-{SUFFIX}", value_serializer="raw", key_serializer="raw")
counts = app.Table("counts", default=int, partitions=2)


@app.agent(source)
async def count(stream):  # type: ignore[no-untyped-def]
    async for key, value in stream.items():
        counts[key] += 1
        await sink.send(key=key, value=value + b":" + str(counts[key]).encode())


if __name__ == "__main__":
    app.main()
