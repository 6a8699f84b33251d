"""The baselines for benchmarks/pipeline.py: a bare and a batched Faust passthrough.

One agent reads ``BENCH_IN`` and sends every record unchanged (raw key and
value) to ``BENCH_OUT``. Same driver (``kafka://``), store (memory), acks and
commit interval as the advisering worker.

* ``BENCH_MODE=bare`` (default): Faust as its documentation shows it, one
  ``await topic.send`` per record.
* ``BENCH_MODE=batched``: the worker's own framework without its work:
  ``stream.take_events`` batches and the worker's batched sends
  (:mod:`advisering.worker.sending`), acked after Kafka acknowledged them,
  and Faust's fetch loop as the worker runs it (``deliver_fetched_batches``).
  The difference between this one and the worker is the worker's own work
  (validation, the engine, the table, a second hop for the copies that move).

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

from advisering.worker import faust_door
from advisering.worker.sending import BatchSender, Record

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


BATCHED = os.environ.get("BENCH_MODE", "bare") == "batched"
sender = BatchSender(lambda: faust_door.aiokafka_producer(app))


async def bare(stream: Any) -> None:
    """One ``await topic.send`` per record."""
    async for key, value in stream.items():
        await sink.send(key=key, value=value)


async def batched(stream: Any) -> Any:
    """Batches of up to 1000 events (10 ms), sent as one Kafka batch per partition."""
    name = sink.get_topic_name()
    async for events in stream.take_events(1000, within=0.01):
        records: list[Record] = [(name, None, event.key, event.value) for event in events]
        await sender.send(records)
        yield len(records)


app.agent(source, name="passthrough")(batched if BATCHED else bare)
if BATCHED:  # and Faust's fetch loop as the worker runs it
    faust_door.deliver_fetched_batches(app)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    Worker(app, loglevel="warning", redirect_stdouts=False,
           override_logging=False).execute_from_commandline()
