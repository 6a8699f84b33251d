"""audit-sink without a broker: bad records become dead letters, rows before offsets, pruning."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from advisering.audit.sink import AuditSink, AuditSinkError, check_record
from advisering.audit.store import AuditStorage
from advisering.cli.main import main
from advisering.engine.notification import AuditRecord
from advisering.events import Rejection
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.topics import AUDIT, DEAD_LETTERS
from tests.pg import open_audit
from tests.unit.audit_support import CITIZEN, CPR, record

GOOD = record("n1").encode()


def _raw(**change: object) -> bytes:
    raw = orjson.loads(GOOD)
    raw.update(change)
    return orjson.dumps(raw)


@pytest.mark.parametrize(("payload", "reason"), [
    (b"", "not_json"), (b"{", "not_json"), (b"[1, 2]", "not_an_object"),
    (b"\"x\"", "not_an_object"),
    (_raw(citizen=CPR), "cpr_detected"),
    (_raw(disclosed=f"Borgeren {CPR[:6]}-{CPR[6:]} fik en sanktion"), "cpr_detected"),
    (_raw(rule=f"r-{CPR}"), "cpr_detected"),
    (_raw(citizen="not-a-pseudonym"), "invalid_field"),
    (_raw(created="29.11.2026"), "invalid_field"),
    (_raw(created="2026-11-29T09:12:01"), "invalid_field"),
    (_raw(created="0001-01-01T00:00:00+01:00"), "invalid_field"),
    (_raw(created="9999-12-31T23:59:59-23:59"), "invalid_field"),
    (_raw(recipient=None), "invalid_field"), (_raw(trigger={"type": 3}), "invalid_field"),
    (_raw(title=7), "invalid_field"),
    (b"{" + b'"a":' * 2000 + b"1" + b"}" * 2000, "not_json"),
    (_raw(disclosed="x" * 70_000), "too_large"),
])
def test_a_record_that_is_no_audit_record_is_rejected_with_a_reason(payload: bytes,
                                                                     reason: str) -> None:
    """Not JSON, another shape, a CPR number in any disguise, too large: a reason, never a raise."""
    checked = check_record(payload, 65_536)
    assert isinstance(checked, Rejection)
    assert checked.reason.value == reason
    assert CPR not in checked.message and CPR not in checked.path


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats()
                 | st.text(max_size=30),
                 lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                 max_leaves=20).map(orjson.dumps),
    st.fixed_dictionaries({}, optional={
        name: st.one_of(st.none(), st.integers(0, 2**40), st.text(max_size=40),
                        st.dictionaries(st.sampled_from(["caseworker", "unit", "department",
                                                         "id", "source", "kle", "event_id",
                                                         "type", "time"]),
                                        st.one_of(st.none(), st.text(max_size=20))))
        for name in ("notification_id", "citizen", "recipient", "rule", "legal_basis",
                     "disclosed", "related_case", "trigger", "created", "title")}).map(
        orjson.dumps),
))
def test_checking_never_raises(payload: bytes) -> None:
    """Any bytes, any JSON, any mix of the fields: an audit record or a Rejection, never a raise."""
    assert isinstance(check_record(payload, 65_536), AuditRecord | Rejection)


def test_a_record_without_title_from_an_older_worker_is_accepted() -> None:
    """The title is additive: a record without it is stored, its title None."""
    raw = orjson.loads(GOOD)
    del raw["title"]
    checked = check_record(orjson.dumps(raw), 65_536)
    assert isinstance(checked, AuditRecord) and checked.title is None
    assert check_record(GOOD, 65_536) == record("n1")


class FakeMessage:
    def __init__(self, offset: int, value: bytes, partition: int = 0) -> None:
        self._offset, self._value, self._partition = offset, value, partition

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def offset(self) -> int:
        return self._offset

    def partition(self) -> int:
        return self._partition


class FakeConsumer:
    """Hands out one batch; records commits and seeks, and what the store held at each commit."""

    def __init__(self, batch: list[FakeMessage], store: AuditStorage) -> None:
        self.batch, self.store = batch, store
        self.commits: list[int] = []
        self.seeks: list[tuple[int, int]] = []

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        batch, self.batch = self.batch, []
        return batch

    def commit(self, asynchronous: bool) -> None:
        self.commits.append(len(self.store.disclosures([CITIZEN], None, None, 100)))

    def seek(self, partition: Any) -> None:
        self.seeks.append((partition.partition, partition.offset))

    def close(self) -> None:
        pass


class FakeProducer:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail = fail

    def produce(self, topic: str, key: bytes, value: bytes, on_delivery: Any) -> None:
        self.sent.append((topic, key, value))
        on_delivery("broker down" if self.fail else None, None)

    def flush(self, timeout: float) -> int:
        return 0


def sink_with(audit_db: Path | str, batch: list[FakeMessage], *, fail: bool = False,
              ) -> tuple[AuditSink, FakeConsumer, FakeProducer, AuditStorage]:
    store = open_audit(audit_db)
    consumer, producer = FakeConsumer(batch, store), FakeProducer(fail)
    sink = AuditSink(KafkaConnection.plaintext("127.0.0.1:1"), "g", store,
                     max_record_bytes=65_536, retention=dt.timedelta(days=1827),
                     consumer=consumer, producer=producer)  # type: ignore[arg-type]
    return sink, consumer, producer, store


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_rows_then_commit_and_bad_records_become_redacted_dead_letters(
        audit_db: Path | str) -> None:
    """Good records are stored, a bad one dead-lettered (redacted), then the offsets committed."""
    before = _count("advisering_audit_dead_letters_total", reason="cpr_detected")
    batch = [FakeMessage(0, GOOD), FakeMessage(1, _raw(disclosed=f"cpr {CPR}")),
             FakeMessage(2, record("n2").encode()), FakeMessage(3, GOOD)]
    sink, consumer, producer, store = sink_with(audit_db, batch)
    assert sink.poll_once() == 2
    assert consumer.commits == [2]  # both rows were there when the offsets moved
    [(topic, _key, value)] = producer.sent
    letter = orjson.loads(value)
    assert (topic, letter["reason"], letter["topic"], letter["offset"]) == (
        DEAD_LETTERS, "cpr_detected", AUDIT, 1)
    assert CPR not in value.decode()
    assert _count("advisering_audit_dead_letters_total", reason="cpr_detected") == before + 1
    assert sink.poll_once() == 0  # nothing more to read
    store.close()


def test_a_failed_dead_letter_rewinds_the_batch_and_commits_nothing(audit_db: Path | str) -> None:
    """Kafka refusing a dead letter: no commit, each partition sought back to the batch's start."""
    batch = [FakeMessage(7, GOOD, 1), FakeMessage(5, b"nope", 2), FakeMessage(6, GOOD, 2)]
    sink, consumer, _producer, store = sink_with(audit_db, batch, fail=True)
    with pytest.raises(AuditSinkError):
        sink.poll_once()
    assert consumer.commits == []
    assert sorted(consumer.seeks) == [(1, 7), (2, 5)]
    store.close()


def test_a_failing_store_rewinds_and_commits_nothing(audit_db: Path | str) -> None:
    """The store raising (disk full, locked): nothing committed, the batch comes again."""
    sink, consumer, _producer, store = sink_with(audit_db, [FakeMessage(3, GOOD)])
    store.close()  # every statement now fails
    with pytest.raises(AuditSinkError):
        sink.poll_once()
    assert consumer.commits == [] and consumer.seeks == [(0, 3)]


def test_pruning_is_logged_and_counted(audit_db: Path | str) -> None:
    """prune() deletes what is past the retention, logs audit_pruned and counts it."""
    before = _count("advisering_audit_pruned_total", kind="disclosure")
    sink, _consumer, _producer, store = sink_with(audit_db, [])
    store.add_many([record("old", created="2019-01-01T09:00:00+01:00"), record("new")])
    with capture_logs() as logs:
        assert sink.prune() == 1
    [entry] = [e for e in logs if e["event"] == "audit_pruned"]
    assert (entry["disclosures"], entry["retention_days"]) == (1, 1827)
    assert _count("advisering_audit_pruned_total", kind="disclosure") == before + 1
    assert [r.notification_id for r in store.disclosures([CITIZEN], None, None, 9)] == ["new"]
    store.close()


def test_run_prunes_on_schedule_and_survives_a_failing_batch(audit_db: Path | str) -> None:
    """run(): prunes at start and each interval, and a failing batch is logged, not fatal."""
    store = open_audit(audit_db)
    clock = iter(float(t) for t in range(100))
    stop = threading.Event()
    calls: list[str] = []

    class Script(FakeConsumer):
        def subscribe(self, topics: list[str], on_assign: Any = None) -> None:
            calls.append("subscribe")

        def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
            calls.append("consume")
            if calls.count("consume") == 2:
                raise KafkaException(KafkaError(KafkaError.BROKER_NOT_AVAILABLE))
            if calls.count("consume") >= 5:
                stop.set()
            return []

    sink = AuditSink(KafkaConnection.plaintext("127.0.0.1:1"), "g", store,
                     max_record_bytes=65_536, retention=dt.timedelta(days=30),
                     consumer=Script([], store), producer=FakeProducer())  # type: ignore[arg-type]
    pruned: list[int] = []
    sink.prune = lambda: pruned.append(1) or 0  # type: ignore[method-assign]
    with capture_logs() as logs:
        sink.run(stop, prune_every=2.0, monotonic=lambda: next(clock))
    assert calls[0] == "subscribe" and calls.count("consume") == 5
    assert len(pruned) >= 2
    assert [e["event"] for e in logs].count("audit_batch_failed") == 1
    store.close()


def test_a_taken_metrics_port_stops_the_sink_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """audit-sink on a port in use: exit 2 naming the setting, before any Kafka client exists."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("ADVISERING_AUDIT_SINK_WEB_PORT", str(taken.getsockname()[1]))
        monkeypatch.setenv("ADVISERING_AUDIT_DB", str(tmp_path / "audit.sqlite3"))
        assert main(["audit-sink"]) == 2
    assert "ADVISERING_AUDIT_SINK_WEB_PORT" in capsys.readouterr().err
    assert not (tmp_path / "audit.sqlite3").exists()
