"""`advisering demo`: the whole bus on one machine, for a newcomer.

Starts the local Kafka (unless a broker serves already), applies the
topics, runs the worker and `advisering serve` (HTTP ingest and the inbox,
with links and development tokens for a few caseworkers), posts the built-in
scenario through the HTTP ingest wave by wave, then keeps a simulated
municipality posting live, and prints each notification as it arrives,
readable to a person, until Ctrl-C, which stops everything the demo started.
Every run starts fresh (:mod:`advisering.dev.demo_state`).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from advisering.dev.demo_insight import show_insight
from advisering.dev.demo_state import DemoPaths, demo_paths, start_broker, start_fresh
from advisering.dev.scenario import demo_scenario, scenario_cprs
from advisering.dev.sim_publish import HttpSender, Pacer, batches
from advisering.dev.simulator import Municipality, default_start, simulate, source_grants
from advisering.engine.notification import Notification
from advisering.events import Vocabulary
from advisering.grants import Grants
from advisering.http.sources import add_source
from advisering.inbox import tokens
from advisering.kafka import apply as topic_apply
from advisering.kafka.clients import consumer_config
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.reading import topic_end
from advisering.kafka.topics import (
    CASE_EVENTS,
    NOTIFICATIONS,
    citizen_topic_name,
    default_vocabulary,
    load_topic_specs,
)
from advisering.labels import department_name, event_name, severity_name
from advisering.rulebook.signing import SIGNING_VARIABLE, VERIFY_VARIABLE, dev_key_env
from advisering.settings import Settings
from advisering.testing import wait_until_idle

DEMO_APP_ID = "advisering-demo"
WAVE_TITLES = (
    "borgernes åbne sager i jobcentret, ældreplejen, socialpsykiatrien, ydelser, skole og sundhed",
    "en ny børnesag for en forælder, der også har en sag i jobcentret",
    "sanktion, indlæggelse, udeblivelse, flytning og dødsfald",
    "endnu en børnesag og en udskrivning fra hospitalet",
)


def apply_topics(settings: Settings) -> None:
    """Make the topics exist, capped at the cluster's brokers."""
    admin = topic_apply.admin_client(KafkaConnection.from_settings(settings))
    brokers = len(admin.list_topics(timeout=30).brokers)
    specs = [
        # A demo cluster may be smaller than production: cap at its brokers.
        spec.effective(settings.topic_partitions,
                       settings.topic_replication_factor or min(spec.replication_factor, brokers))
        for spec in load_topic_specs(settings.topics_dir).values()
    ]
    changes = topic_apply.plan(admin, specs)
    topic_apply.execute(admin, specs, changes)


def format_notification(notification: Notification) -> str:
    """A notification as a caseworker would read it, with its why."""
    recipient = notification.recipient
    trigger = notification.trigger
    who = recipient.caseworker or f"enhed {recipient.unit}"
    origin = department_name(trigger.department) if trigger.department else trigger.source
    return "\n".join([
        f"[{severity_name(notification.severity).upper()}] "
        f"Til {who} ({department_name(recipient.department)}, {recipient.unit}) "
        f"om sag {notification.related_case.id}",
        f"  {notification.message}",
        f"  Hvorfor: {notification.title} · hjemmel: {notification.legal_basis}",
        f"  Udløst af: {event_name(trigger.type)} fra {origin} "
        f"({_danish_time(trigger.time)}) · regel {notification.rule}",
    ])


def _danish_time(iso_time: str) -> str:
    return dt.datetime.fromisoformat(iso_time).strftime("%d.%m.%Y kl. %H:%M")


@contextmanager
def child_process(
    name: str, verb: str, paths: DemoPaths, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """`advisering <verb>` as a child process, stopped with SIGTERM on exit."""
    log_path = paths.log_file(verb)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "advisering.cli", verb], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    print(f"{name} started (pid {process.pid}); its log: {log_path}")
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        print(f"{name} stopped.")


def wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 120.0) -> None:
    """Wait until ``process`` answers 200 on ``/readyz``; RuntimeError if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("a demo process exited during start-up; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"a demo process was not ready within {timeout:.0f}s; see its log")


def demo_grants() -> dict[str, Grants]:
    """The grants of every source system of the demo: the simulator's and the scenario's."""
    # The scenario's health case comes from a system called "sundhed"; the simulator's
    # from "nexus-sundhed". Both may publish health cases, nothing else.
    return source_grants() | {"sundhed": Grants(types=("case.*",), departments=("sundhed",))}


def write_demo_sources(path: Path, vocabulary: Vocabulary | None = None) -> dict[str, str]:
    """A fresh sources file with a key and real grants for every demo source; the keys."""
    path.unlink(missing_ok=True)
    return {name: add_source(path, name, grants, description="demo", vocabulary=vocabulary)
            for name, grants in sorted(demo_grants().items())}


def register_demo_sources(settings: Settings, path: Path) -> dict[str, str]:
    """A fresh sources file at ``path`` with a key for every source system of the demo."""
    names = {event["source"] for wave in demo_scenario() for event in wave}
    keys = write_demo_sources(path, default_vocabulary(settings.topics_dir))
    missing = names - set(keys)
    if missing:  # a scenario source without grants would be refused: say so at once
        raise RuntimeError(f"demo sources without grants: {sorted(missing)}")
    return keys


DEMO_CASEWORKERS = (  # (caseworker, department, unit, who), as in advisering.dev.scenario
    ("bf-0042", "boern-familie", "bf-syd", "børn og familie"),
    ("hp-0107", "aeldre", "hjemmepleje-vest", "hjemmeplejen"),
    ("sp-0031", "handicap-psykiatri", "socialpsykiatri", "socialpsykiatrien"),
    ("sk-0001", "skole", "pps", "PPR i skoleområdet (enhedens advis)"),
)


def print_inbox_links(port: int, secret: bytes, policy: tokens.TokenPolicy) -> None:
    """Ready-to-open inbox links with development tokens for a few caseworkers."""
    print("\nIndbakken (åbn et link i browseren; nøglen gælder 8 timer):")
    for caseworker, department, unit, what in DEMO_CASEWORKERS:
        token = tokens.issue(secret, caseworker, department, unit, policy=policy)
        print(f"  {caseworker} – {what}:\n    http://127.0.0.1:{port}/#token={token}")


def simulate_live(sender: HttpSender, rate: float, stop: threading.Event) -> None:
    """The synthetic municipality, posted through the HTTP ingest at ``rate`` events/s."""
    municipality = Municipality(seed=2026, citizens=5_000, days=30, start=default_start(30))
    pacer = Pacer(rate)
    for batch in batches(simulate(municipality), 10):
        if stop.is_set():
            return
        sender.send(batch)
        pacer.wait(len(batch))


def demo_env(settings: Settings, paths: DemoPaths, token_secret: bytes,
             base: dict[str, str]) -> dict[str, str]:
    """The environment of the demo's worker and serve: this run's key and the demo's folder.

    The pseudonym key is new at every run (unless ``ADVISERING_PSEUDONYM_KEY``
    is set); the inbox, the sources and the worker's data are in ``paths``,
    which :func:`advisering.dev.demo_state.start_fresh` has emptied. The rule
    signing keys are the settings' when set, else the demo's own pair in
    ``paths.rules_keys`` (made at the first run), so `rules deploy` with
    the same two variables reaches the demo's worker.
    """
    key = (settings.pseudonym_key.get_secret_value() if settings.pseudonym_key
           else secrets.token_hex(32))
    signing = dev_key_env(paths.rules_keys)
    if settings.rules_signing_key_file is not None:
        signing[SIGNING_VARIABLE] = str(settings.rules_signing_key_file)
    if settings.rules_verify_keys_file is not None:
        signing[VERIFY_VARIABLE] = str(settings.rules_verify_keys_file)
    return dict(base, **signing, ADVISERING_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
                ADVISERING_PSEUDONYM_KEY=key, ADVISERING_WORKER_APP_ID=DEMO_APP_ID,
                ADVISERING_WORKER_COMMIT_INTERVAL="0.5",
                ADVISERING_WORKER_DATA_DIR=str(paths.worker_data),
                ADVISERING_SOURCES_FILE=str(paths.sources),
                ADVISERING_TOKEN_SECRET=token_secret.decode(),
                ADVISERING_INBOX_DB=str(paths.inbox_db),
                ADVISERING_INBOX_GROUP="advisering-demo-inbox",
                ADVISERING_AUDIT_GROUP="advisering-demo-audit")


def run_demo(settings: Settings, *, exit_after_scenario: bool = False, rate: float = 20.0) -> int:
    """Run the demo: Kafka, worker, ingest, the scenario, then a live municipality until Ctrl-C."""
    paths = demo_paths(settings)
    start_fresh(paths)
    broker, said = start_broker(settings, paths)
    print(said)
    apply_topics(settings)
    api_keys = register_demo_sources(settings, paths.sources)
    token_secret = settings.token_secret_bytes() or secrets.token_hex(32).encode()
    env = demo_env(settings, paths, token_secret, dict(os.environ))
    sender = HttpSender(f"http://127.0.0.1:{settings.serve_port}", api_keys)
    stop = threading.Event()
    shown = 0
    try:
        with child_process("Worker", "worker", paths, env) as worker, \
                child_process("HTTP ingest", "serve", paths, env) as server, \
                child_process("Audit sink", "audit-sink", paths, env):
            wait_ready(worker, settings.worker_web_port)
            wait_ready(server, settings.serve_port)
            print(f"Ingest: http://127.0.0.1:{settings.serve_port}/api/v1/events · worker "
                  f"metrics: http://127.0.0.1:{settings.worker_web_port}/metrics")
            print_inbox_links(settings.serve_port, token_secret,
                              tokens.TokenPolicy.from_settings(settings))
            kafka = KafkaConnection.from_settings(settings)
            consumer = Consumer(consumer_config(
                kafka, group=f"advisering-demo-viewer-{secrets.token_hex(4)}",
                client_id="advisering-demo-viewer"))
            ends = topic_end(kafka, NOTIFICATIONS)
            consumer.assign([TopicPartition(NOTIFICATIONS, p, o) for p, o in ends.items()])
            topics = [CASE_EVENTS, citizen_topic_name(DEMO_APP_ID)]
            for title, wave in zip(WAVE_TITLES, demo_scenario(), strict=True):
                print(f"\n== Kildesystemerne melder: {title} ({len(wave)} hændelser)")
                sender.send(wave)
                wait_until_idle(kafka, DEMO_APP_ID, topics)
                shown += _show(consumer, 1.0)
            print(f"\n{shown} notifikationer fra scenariet.")
            show_insight(paths.inbox_db.parent / "audit.sqlite3", scenario_cprs(),
                         env["ADVISERING_PSEUDONYM_KEY"].encode(), shown, paths.root)
            if not exit_after_scenario:
                print(f"Nu kører en simuleret kommune med 5.000 borgere ({rate:g} hændelser/s "
                      "gennem HTTP). Tryk Ctrl-C for at stoppe demoen.")
                feeder = threading.Thread(target=simulate_live, args=(sender, rate, stop),
                                          daemon=True)
                feeder.start()
                try:
                    while worker.poll() is None and server.poll() is None:
                        shown += _show(consumer, 1.0)
                except KeyboardInterrupt:
                    print(f"\nStopper demoen efter {shown} notifikationer ...")
            consumer.close()
    except KeyboardInterrupt:
        print("\nStopper demoen ...")
    finally:
        stop.set()
        if broker is not None:
            broker.stop()
            print("Kafka stopped.")
    return 0


def _show(consumer: Consumer, seconds: float) -> int:
    shown = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        try:
            notification = Notification.decode(message.value() or b"")
        except ValueError:  # the worker's own topic should never hold this
            continue
        print("\n" + format_notification(notification))
        shown += 1
    return shown
