"""`advisering demo`: the whole bus on one machine, for a newcomer.

Starts the local Kafka (unless a remote cluster is configured), applies the
topics, runs the worker, publishes the built-in municipality wave by wave and
prints each notification as it arrives, readable to a person, until Ctrl-C,
which stops everything the demo started.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from advisering.broker import topic_apply
from advisering.broker.local_kafka import LocalKafka
from advisering.broker.topic_specs import CASE_EVENTS, NOTIFICATIONS, load_topic_specs
from advisering.engine.evaluate import EVENT_NAMES, department_name
from advisering.scenario import demo_scenario
from advisering.settings import Settings
from advisering.testing import end_offsets, wait_until_idle

DEMO_APP_ID = "advisering-demo"
SEVERITY = {"high": "HØJ", "normal": "NORMAL", "info": "INFO"}
WAVE_TITLES = (
    "borgernes åbne sager i jobcentret, ældreplejen, socialpsykiatrien, ydelser, skole og sundhed",
    "en ny børnesag for en forælder, der også har en sag i jobcentret",
    "sanktion, indlæggelse, udeblivelse, flytning og dødsfald",
    "endnu en børnesag og en udskrivning fra hospitalet",
)


def prepare_broker(settings: Settings) -> bool:
    """Start the local broker if needed and make the topics exist; True if we started it."""
    started = False
    if settings.uses_local_broker():
        result = LocalKafka(settings).start()
        started = result.started
        print(result.message)
    admin = topic_apply.admin_client(settings.bootstrap_servers)
    brokers = len(admin.list_topics(timeout=30).brokers)
    specs = [
        # A demo cluster may be smaller than production: cap at its brokers.
        spec.effective(settings.topic_partitions,
                       settings.topic_replication_factor or min(spec.replication_factor, brokers))
        for spec in load_topic_specs(settings.topics_dir).values()
    ]
    changes = topic_apply.plan(admin, specs)
    topic_apply.execute(admin, specs, changes)
    return started


def format_notification(notification: dict[str, Any]) -> str:
    """A notification as a caseworker would read it, with its why."""
    recipient = notification["recipient"]
    trigger = notification["trigger"]
    who = recipient["caseworker"] or f"enhed {recipient['unit']}"
    origin = department_name(trigger["department"]) if trigger["department"] else trigger["source"]
    return "\n".join([
        f"[{SEVERITY.get(notification['severity'], notification['severity'])}] "
        f"Til {who} ({department_name(recipient['department'])}, {recipient['unit']}) "
        f"om sag {notification['related_case']['id']}",
        f"  {notification['message']}",
        f"  Hvorfor: {notification['title']} · hjemmel: {notification['legal_basis']}",
        f"  Udløst af: {EVENT_NAMES.get(trigger['type'], trigger['type'])} fra {origin} "
        f"({_danish_time(trigger['time'])}) · regel {notification['rule']}",
    ])


def _danish_time(iso_time: str) -> str:
    return dt.datetime.fromisoformat(iso_time).strftime("%d.%m.%Y kl. %H:%M")


@contextmanager
def worker_process(settings: Settings, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`advisering worker` as a child process, stopped with SIGTERM on exit."""
    log_path = settings.kafka_cache_dir / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "advisering.cli", "worker"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    print(f"Worker started (pid {process.pid}); its log: {log_path}")
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        print("Worker stopped.")


def wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the worker exited during start-up; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the worker was not ready within {timeout:.0f}s; see its log")


def run_demo(settings: Settings, *, exit_after_scenario: bool = False) -> int:
    from advisering.client import Publisher  # noqa: PLC0415

    started_kafka = prepare_broker(settings)
    key = (settings.pseudonym_key.get_secret_value() if settings.pseudonym_key
           else secrets.token_hex(32))
    env = dict(os.environ, ADVISERING_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
               ADVISERING_PSEUDONYM_KEY=key, ADVISERING_WORKER_APP_ID=DEMO_APP_ID,
               ADVISERING_WORKER_COMMIT_INTERVAL="0.5")
    demo_settings = settings.model_copy(update={
        "pseudonym_key": SecretStr(key), "worker_app_id": DEMO_APP_ID,
    })
    shown = 0
    try:
        with worker_process(settings, env) as worker:
            wait_ready(worker, settings.worker_web_port)
            print(f"Worker ready; metrics at http://127.0.0.1:{settings.worker_web_port}/metrics")
            consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers,
                                 "group.id": f"advisering-demo-viewer-{secrets.token_hex(4)}",
                                 "enable.auto.commit": False})
            ends = end_offsets(settings.bootstrap_servers, NOTIFICATIONS)
            consumer.assign([TopicPartition(NOTIFICATIONS, p, o) for p, o in ends.items()])
            topics = [CASE_EVENTS, f"{DEMO_APP_ID}-citizen-events"]
            with Publisher(demo_settings) as publisher:
                for title, wave in zip(WAVE_TITLES, demo_scenario(), strict=True):
                    print(f"\n== Kildesystemerne melder: {title} ({len(wave)} hændelser)")
                    failed = [r for r in publisher.publish(wave) if not r.ok]
                    if failed:
                        print(f"   {len(failed)} hændelse(r) afvist: {failed[0].message}")
                    wait_until_idle(settings.bootstrap_servers, DEMO_APP_ID, topics)
                    shown += _show(consumer, 1.0)
            print(f"\n{shown} notifikationer. Tryk Ctrl-C for at stoppe demoen.")
            while not exit_after_scenario and worker.poll() is None:
                shown += _show(consumer, 1.0)
            consumer.close()
    except KeyboardInterrupt:
        print("\nStopper demoen ...")
    finally:
        if started_kafka:
            LocalKafka(settings).stop()
            print("Kafka stopped.")
    return 0


def _show(consumer: Consumer, seconds: float) -> int:
    shown = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        print("\n" + format_notification(orjson.loads(message.value() or b"{}")))
        shown += 1
    return shown
