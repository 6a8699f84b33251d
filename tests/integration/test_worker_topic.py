"""The worker's repartition topic is made as topics/citizen-events.yaml declares it."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, ConfigResource

from advisering.kafka.topics import citizen_topic_name, citizen_topic_spec
from advisering.settings import Settings
from tests.integration.bus import ROOT, WorkerProcess


def test_worker_creates_its_repartition_topic_as_declared(worker: WorkerProcess) -> None:
    """A starting worker creates <app-id>-citizen-events with the declared retention and ISR."""
    bootstrap = worker.env["ADVISERING_BOOTSTRAP_SERVERS"]
    name = citizen_topic_name(worker.app_id)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = admin.list_topics(name, timeout=30).topics[name]
    assert topic.error is None
    assert len(topic.partitions) == Settings().worker_partitions
    resource = ConfigResource("topic", name)
    configs = admin.describe_configs([resource])[resource].result(30)
    # As declared, with min.insync.replicas capped at the replicas of a one-node broker.
    replicas = len(topic.partitions[0].replicas)
    declared = citizen_topic_spec(ROOT / "topics", Settings(worker_app_id=worker.app_id))
    declared = declared.effective(None, replicas)
    assert declared.config["retention.ms"] == "604800000"
    assert declared.config["min.insync.replicas"] == str(min(2, replicas))
    for key, value in declared.config.items():
        assert configs[key].value == value
