"""`advisering topics apply`: make the cluster match ``topics/``, idempotently.

First a plan (create / alter / unchanged) is computed from what the cluster
has; then, unless it is a dry run, the plan is carried out. Shrinking a topic's
partitions is refused: Kafka cannot do it, and the key-to-partition mapping
that Faust's tables depend on would break.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from advisering.kafka.clients import client_config
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.topics import TopicSpec
from advisering.log import get_logger

log = get_logger(__name__)

Action = Literal["create", "alter", "unchanged"]


class TopicApplyError(RuntimeError):
    """The plan cannot be carried out; the message says why and what to do."""


@dataclass(frozen=True)
class TopicChange:
    """One step of the plan for one topic; partitions and configs are (before, after) pairs."""

    action: Action
    name: str
    partitions: tuple[int | None, int] = (None, 0)
    configs: dict[str, tuple[str | None, str]] = field(default_factory=dict)

    def describe(self) -> str:
        """One aligned line of the plan, as `topics apply` prints it."""
        if self.action == "create":
            return f"create     {self.name} (partitions {self.partitions[1]})"
        if self.action == "unchanged":
            return f"unchanged  {self.name}"
        parts = []
        before, after = self.partitions
        if before is not None and before != after:
            parts.append(f"partitions {before} -> {after}")
        parts += [f"{k}: {old} -> {new}" for k, (old, new) in sorted(self.configs.items())]
        return f"alter      {self.name} ({'; '.join(parts)})"


def admin_client(kafka: KafkaConnection) -> AdminClient:
    """An admin client of ``kafka`` with our logging and a 10 s socket timeout."""
    return AdminClient(admin_config(kafka))


def admin_config(kafka: KafkaConnection) -> dict[str, Any]:
    """An admin client's configuration: the connection and a 10 s socket timeout."""
    return client_config(kafka, {"socket.timeout.ms": 10000})


def plan(
    admin: AdminClient, specs: Iterable[TopicSpec], timeout: float = 15.0
) -> list[TopicChange]:
    """Compare the declared topics with the cluster; raise on a partition shrink."""
    metadata = admin.list_topics(timeout=timeout)
    broker_count = len(metadata.brokers)
    specs = list(specs)
    existing = {spec.name: metadata.topics[spec.name] for spec in specs
                if spec.name in metadata.topics and metadata.topics[spec.name].error is None}
    current_configs = _describe(admin, list(existing), timeout)
    changes: list[TopicChange] = []
    for spec in specs:
        if spec.replication_factor > broker_count and spec.name not in existing:
            raise TopicApplyError(
                f"{spec.name} asks for replication factor {spec.replication_factor} but the "
                f"cluster has {broker_count} broker(s). On a one-node development broker use "
                "--replication-factor 1 (or ADVISERING_TOPIC_REPLICATION_FACTOR=1)."
            )
        if spec.name not in existing:
            changes.append(TopicChange("create", spec.name, (None, spec.partitions)))
            continue
        have_partitions = len(existing[spec.name].partitions)
        if spec.partitions < have_partitions:
            raise TopicApplyError(
                f"{spec.name} has {have_partitions} partitions and topics/ asks for "
                f"{spec.partitions}: Kafka cannot shrink a topic. Declare at least "
                f"{have_partitions}, or recreate the topic deliberately."
            )
        have = current_configs.get(spec.name, {})
        differing = {
            key: (have.get(key), value)
            for key, value in spec.config.items()
            if have.get(key) != value
        }
        if differing or spec.partitions != have_partitions:
            changes.append(
                TopicChange("alter", spec.name, (have_partitions, spec.partitions), differing)
            )
        else:
            changes.append(TopicChange("unchanged", spec.name, (have_partitions, spec.partitions)))
    return changes


def execute(
    admin: AdminClient, specs: Iterable[TopicSpec], changes: list[TopicChange],
    timeout: float = 30.0,
) -> None:
    """Carry out a plan made by :func:`plan`."""
    by_name: dict[str, TopicSpec] = {spec.name: spec for spec in specs}
    creates = [
        NewTopic(
            change.name,
            num_partitions=by_name[change.name].partitions,
            replication_factor=by_name[change.name].replication_factor,
            config=dict(by_name[change.name].config),
        )
        for change in changes if change.action == "create"
    ]
    if creates:
        _wait_all(admin.create_topics(creates, operation_timeout=timeout), "create")
        wait_for_leaders(admin, [topic.topic for topic in creates], timeout)
    grows = [
        NewPartitions(change.name, change.partitions[1])
        for change in changes
        if change.action == "alter" and change.partitions[0] not in (None, change.partitions[1])
    ]
    if grows:
        _wait_all(admin.create_partitions(grows, operation_timeout=timeout), "add partitions")
    resources = []
    for change in changes:
        if change.action != "alter" or not change.configs:
            continue
        resource = ConfigResource(ResourceType.TOPIC, change.name)
        for key, (_, value) in change.configs.items():
            resource.add_incremental_config(
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            )
        resources.append(resource)
    if resources:
        _wait_all(admin.incremental_alter_configs(resources), "alter configs")
    for change in changes:
        if change.action != "unchanged":
            log.info("topic_applied", topic=change.name, action=change.action)


def create_missing(admin: AdminClient, specs: Iterable[TopicSpec], timeout: float = 30.0) -> None:
    """Create the topics of ``specs`` that do not exist; leave existing ones as they are."""
    new = [NewTopic(spec.name, num_partitions=spec.partitions,
                    replication_factor=spec.replication_factor, config=dict(spec.config))
           for spec in specs]
    for future in admin.create_topics(new, operation_timeout=timeout).values():
        try:
            future.result(timeout=2 * timeout)
        except KafkaException as exc:
            if not already_exists(exc):
                raise


def already_exists(exc: KafkaException) -> bool:
    """True when Kafka refused to create a topic because it exists (someone was first)."""
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS


def wait_for_leaders(admin: AdminClient, names: list[str], timeout: float = 30.0) -> None:
    """Wait until every partition of ``names`` has a leader (new topics take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=timeout)
        ready = all(
            name in metadata.topics and metadata.topics[name].error is None
            and metadata.topics[name].partitions
            and all(p.leader >= 0 for p in metadata.topics[name].partitions.values())
            for name in names
        )
        if ready:
            return
        if time.monotonic() > deadline:
            raise TopicApplyError(f"topics {', '.join(names)} have no leader after {timeout:.0f}s")
        time.sleep(0.2)


def _describe(admin: AdminClient, names: list[str], timeout: float) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    result: dict[str, dict[str, str]] = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        entries = future.result(timeout=timeout)
        result[resource.name] = {key: entry.value for key, entry in entries.items()}
    return result


def _wait_all(futures: Mapping[Any, Future[Any]], what: str) -> None:
    errors = []
    for key, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:  # how the admin client's futures report a refusal
            name = getattr(key, "name", key)
            errors.append(f"{name}: {exc}")
    if errors:
        raise TopicApplyError(f"Kafka refused to {what}: " + "; ".join(errors))
