"""The baseline for benchmarks/pipeline.py: a bare Faust passthrough.

One agent reads ``BENCH_IN`` and sends every record unchanged (raw key and
value) to ``BENCH_OUT``. Same driver (``kafka://``), store (memory), acks and
commit interval as the advisering worker, so the difference between the two
is the worker's own work: a second hop, the engine and the table.

Run as a worker subprocess by pipeline.py:

    BENCH_APP_ID=... BENCH_BOOTSTRAP=127.0.0.1:49092 BENCH_IN=... BENCH_OUT=... \
    BENCH_WEB_PORT=... BENCH_DATA_DIR=... python benchmarks/faust_passthrough.py

It is started the way ``advisering worker`` starts its app (a faust Worker
with ``override_logging=False``). Through ``faust ... worker -l warn`` Faust's
terminal spinner would set the root logger to DEBUG, and every aiokafka debug
call would build a log record: that costs more than the passthrough itself.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import faust
from faust.worker import Worker

app = faust.App(
    os.environ.get("BENCH_APP_ID", "bench-passthrough"),
    broker=f"kafka://{os.environ.get('BENCH_BOOTSTRAP', '127.0.0.1:49092')}",
    store="memory://",
    topic_partitions=int(os.environ.get("BENCH_PARTITIONS", "6")),
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    web_host="127.0.0.1",
    web_port=int(os.environ.get("BENCH_WEB_PORT", "6067")),
    datadir=os.environ.get("BENCH_DATA_DIR", "/tmp/bench-passthrough-data"),
    producer_acks=-1,
)
source = app.topic(os.environ.get("BENCH_IN", "bench-in"),
                   key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ.get("BENCH_OUT", "bench-out"),
                 key_serializer="raw", value_serializer="raw")


@app.agent(source, name="passthrough")
async def passthrough(stream: Any) -> None:
    async for key, value in stream.items():
        await sink.send(key=key, value=value)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    Worker(app, loglevel="warning", redirect_stdouts=False,
           override_logging=False).execute_from_commandline()
