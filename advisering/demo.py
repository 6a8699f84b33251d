"""`advisering demo`: the bus on one machine, for a newcomer.

Starts the local Kafka (unless a remote cluster is configured) and applies the
topics with development overrides.
"""

from __future__ import annotations

from advisering.broker import topic_apply
from advisering.broker.local_kafka import LocalKafka
from advisering.broker.topic_specs import load_topic_specs
from advisering.settings import Settings


def prepare_broker(settings: Settings) -> None:
    """Start the local broker if needed and make the topics exist."""
    if settings.uses_local_broker():
        result = LocalKafka(settings).start()
        print(result.message)
    replicas = settings.topic_replication_factor or (1 if settings.uses_local_broker() else None)
    specs = [
        spec.effective(settings.topic_partitions, replicas)
        for spec in load_topic_specs(settings.topics_dir).values()
    ]
    admin = topic_apply.admin_client(settings.bootstrap_servers)
    changes = topic_apply.plan(admin, specs)
    topic_apply.execute(admin, specs, changes)
    for change in changes:
        print(f"  topic {change.describe()}")


def run_demo(settings: Settings) -> int:
    prepare_broker(settings)
    print(f"Kafka is ready at {settings.bootstrap_servers} with the advisering topics.")
    return 0
