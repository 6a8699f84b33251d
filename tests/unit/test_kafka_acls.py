"""ACLs as code: the schema of topics/acls.yaml and the plan `topics apply` makes from it."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from advisering.kafka import acl_apply
from advisering.kafka.acls import (
    AclEntry,
    Operation,
    acl_entries,
    load_acls,
    managed_principals,
)
from advisering.kafka.topics import CASE_EVENTS, NOTIFICATIONS, RULES, load_topic_specs
from advisering.settings import Settings
from advisering.yamlfiles import YamlFileError

ROOT = Path(__file__).resolve().parents[2]
ACLS = ROOT / "topics" / "acls.yaml"


def settings(**values: Any) -> Settings:
    return Settings(bootstrap_servers="127.0.0.1:1", **values)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acls.yaml"
    path.write_text(text)
    return path


def entries_of(principal: str, app_id: str = "advisering-worker") -> set[AclEntry]:
    declared = acl_entries(load_acls(ACLS), settings(worker_app_id=app_id))
    return {entry for entry in declared if entry.principal == principal}


def test_the_real_file_loads_and_the_topic_loader_skips_it() -> None:
    """topics/acls.yaml is valid; load_topic_specs still finds the five topics beside it."""
    acls = load_acls(ACLS)
    assert managed_principals(acls) == ("User:source", "User:worker", "User:serve",
                                        "User:audit-sink", "User:operator")
    assert len(load_topic_specs(ROOT / "topics")) == 5


def test_audit_sink_reads_only_the_audit_and_writes_only_dead_letters() -> None:
    """audit-sink: READ advisering.audit in its own group, WRITE dead letters, nothing else."""
    assert {(e.resource, e.name, e.operation) for e in entries_of("User:audit-sink")} == {
        ("topic", "advisering.audit", "read"), ("topic", "advisering.dead-letters", "write"),
        ("group", "advisering-audit", "read")}


def test_a_source_may_only_write_case_events() -> None:
    """The source's one binding is WRITE on advisering.case-events (no read, no rules)."""
    assert entries_of("User:source") == {
        AclEntry("User:source", "topic", CASE_EVENTS, "literal", "write")}


def test_the_worker_reads_input_writes_outputs_and_owns_its_prefix() -> None:
    """The worker reads case events, never writes rules, and its prefix follows the app id."""
    worker = entries_of("User:worker", app_id="adv-prod")
    assert AclEntry("User:worker", "topic", CASE_EVENTS, "literal", "read") in worker
    assert AclEntry("User:worker", "topic", NOTIFICATIONS, "literal", "write") in worker
    assert AclEntry("User:worker", "group", "adv-prod", "prefixed", "read") in worker
    assert AclEntry("User:worker", "topic", "adv-prod", "prefixed", "create") in worker
    assert not any(e.name == RULES and e.operation == "write" for e in worker)
    assert not any(e.name == CASE_EVENTS and e.operation == "write" for e in worker)


def test_serve_group_follows_the_inbox_group_setting() -> None:
    """{inbox_group} is filled from ADVISERING_INBOX_GROUP."""
    declared = acl_entries(load_acls(ACLS), settings(inbox_group="inbox-kbh"))
    assert AclEntry("User:serve", "group", "inbox-kbh", "literal", "read") in declared


GOOD = """principals:
  - component: source
    principal: User:source
    allow:
      - topic: advisering.case-events
        operations: [write]
"""


@pytest.mark.parametrize(("text", "message"), [
    (GOOD.replace("[write]", "[fly]"), "operations"),
    (GOOD.replace("[write]", "[cluster_action]"), "cluster_action is not an operation on a topic"),
    (GOOD.replace("advisering.case-events", "advisering.secrets"), "unknown topic"),
    (GOOD.replace("topic: advisering.case-events", "group: '{evil}'").replace("[write]", "[read]"),
     "placeholders"),
    (GOOD.replace("User:source", "source"), "a principal is User:"),
    (GOOD.replace("User:source", "User:x;User:admin"), "a principal is User:"),
    (GOOD.replace("operations", "operation"), "unknown field"),
    (GOOD.replace("      - topic: advisering.case-events\n",
                  "      - topic: advisering.case-events\n        group: g\n"), "exactly one"),
])
def test_a_bad_grant_is_refused_naming_file_and_principal(
    tmp_path: Path, text: str, message: str
) -> None:
    """Each mistake is an error with the file, the principal (where it parses) and why."""
    path = write(tmp_path, text)
    with pytest.raises(YamlFileError) as caught:
        load_acls(path)
    shown = str(caught.value)
    assert "Tuple should have" not in shown  # no echo of the real problem
    assert str(path) in shown
    assert message in shown
    if "User:source" in text:
        assert "[User:source]" in shown


def test_a_principal_given_twice_is_refused(tmp_path: Path) -> None:
    """Two entries for one principal: the second is named, with the line."""
    twice = GOOD + GOOD.split("\n", 1)[1].replace("component: source", "component: other")
    with pytest.raises(YamlFileError, match=r"acls.yaml:\d+ \[User:source\].*given twice"):
        load_acls(write(tmp_path, twice))


def test_a_prefixed_topic_must_be_the_workers_own(tmp_path: Path) -> None:
    """A prefix other than {worker_app_id} (e.g. every advisering. topic) is refused."""
    text = GOOD.replace("        operations", "        pattern: prefixed\n        operations")
    with pytest.raises(YamlFileError, match="unknown topic"):
        load_acls(write(tmp_path, text))


class FakeAdmin:
    """describe/create/delete ACLs on an in-memory list, as confluent's futures report."""

    def __init__(self, bindings: list[AclBinding], error: int | None = None,
                 authorizer: str | None = "StandardAuthorizer") -> None:
        self.bindings = bindings
        self.error = error
        self.authorizer = authorizer  # None: describe_configs is not authorized
        self.created: list[AclBinding] = []
        self.deleted: list[AclBinding] = []

    def list_topics(self, **_: Any) -> SimpleNamespace:
        return SimpleNamespace(brokers={1: None})

    def describe_configs(self, resources: list[Any], **_: Any) -> dict[Any, Future[Any]]:
        future: Future[Any] = Future()
        if self.authorizer is None:
            future.set_exception(KafkaException(KafkaError(
                KafkaError.CLUSTER_AUTHORIZATION_FAILED)))
        else:
            future.set_result({"authorizer.class.name": SimpleNamespace(value=self.authorizer)})
        return {resources[0]: future}

    def describe_acls(self, query: AclBinding, **_: Any) -> Future[list[AclBinding]]:
        future: Future[list[AclBinding]] = Future()
        if self.error is not None:
            future.set_exception(KafkaException(KafkaError(self.error)))
        else:
            future.set_result([b for b in self.bindings if b.principal == query.principal])
        return future

    def create_acls(self, bindings: list[AclBinding], **_: Any) -> dict[AclBinding, Future[None]]:
        self.created += bindings
        return {binding: done(None) for binding in bindings}

    def delete_acls(self, filters: list[AclBinding], **_: Any) -> dict[AclBinding, Future[Any]]:
        self.deleted += filters
        return {query: done([query]) for query in filters}


def done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


SOURCE_WRITE = AclEntry("User:source", "topic", CASE_EVENTS, "literal", "write")
STRAY_READ = AclBinding(ResourceType.TOPIC, NOTIFICATIONS, ResourcePatternType.LITERAL,
                        "User:source", "*", AclOperation.READ, AclPermissionType.ALLOW)
OTHER_APP = AclBinding(ResourceType.TOPIC, NOTIFICATIONS, ResourcePatternType.LITERAL,
                       "User:someone-else", "*", AclOperation.READ, AclPermissionType.ALLOW)


def test_plan_creates_missing_and_removes_stray_bindings_of_managed_principals() -> None:
    """A declared binding missing is created; an undeclared one of the principal is removed."""
    admin = FakeAdmin([STRAY_READ, OTHER_APP])
    plan = acl_apply.plan(admin, [SOURCE_WRITE], ["User:source"])  # type: ignore[arg-type]
    assert [acl_apply.describe_binding(b) for b in plan.create] == [
        "User:source write topic advisering.case-events"]
    assert plan.remove == (STRAY_READ,)
    assert plan.lines() == ["create     User:source write topic advisering.case-events",
                            "remove     User:source read topic advisering.notifications"]
    acl_apply.execute(admin, plan)  # type: ignore[arg-type]
    assert [acl_apply.key_of(b) for b in admin.created] == [
        acl_apply.key_of(acl_apply.binding_of(SOURCE_WRITE))]
    assert [acl_apply.key_of(b) for b in admin.deleted] == [acl_apply.key_of(STRAY_READ)]


def test_plan_is_empty_when_the_cluster_matches() -> None:
    """Nothing to create or remove: the plan says how many bindings are unchanged."""
    admin = FakeAdmin([acl_apply.binding_of(SOURCE_WRITE), OTHER_APP])
    plan = acl_apply.plan(admin, [SOURCE_WRITE], ["User:source"])  # type: ignore[arg-type]
    assert plan.empty
    assert plan.lines() == ["unchanged  1 ACL binding"]


def test_a_deny_or_host_binding_counts_as_stray() -> None:
    """A DENY for a managed principal is not in the file, so the plan removes it (and says so)."""
    deny = AclBinding(ResourceType.TOPIC, CASE_EVENTS, ResourcePatternType.LITERAL,
                      "User:source", "10.0.0.1", AclOperation.WRITE, AclPermissionType.DENY)
    plan = acl_apply.plan(FakeAdmin([deny]), [], ["User:source"])  # type: ignore[arg-type]
    assert plan.lines() == [
        "remove     User:source write topic advisering.case-events [DENY] [host 10.0.0.1]"]


def test_a_broker_without_authorizer_is_reported_as_unsupported() -> None:
    """SECURITY_DISABLED becomes AclsUnsupported (the command skips with a note)."""
    admin = FakeAdmin([], error=KafkaError.SECURITY_DISABLED)
    with pytest.raises(acl_apply.AclsUnsupported):
        acl_apply.plan(admin, [SOURCE_WRITE], ["User:source"])  # type: ignore[arg-type]


def test_an_empty_authorizer_setting_is_reported_as_unsupported() -> None:
    """Kafka 4 lists no ACLs without an authorizer: an empty authorizer.class.name tells."""
    admin = FakeAdmin([], authorizer="")
    with pytest.raises(acl_apply.AclsUnsupported):
        acl_apply.plan(admin, [SOURCE_WRITE], ["User:source"])  # type: ignore[arg-type]


def test_an_unreadable_broker_config_does_not_stop_the_plan() -> None:
    """Without DescribeConfigs on the cluster the plan goes on; the ACL calls decide."""
    admin = FakeAdmin([], authorizer=None)
    plan = acl_apply.plan(admin, [SOURCE_WRITE], ["User:source"])  # type: ignore[arg-type]
    assert len(plan.create) == 1


def test_a_principal_without_acl_rights_is_told_what_to_do() -> None:
    """CLUSTER_AUTHORIZATION_FAILED names the super user and --skip-acls."""
    admin = FakeAdmin([], error=KafkaError.CLUSTER_AUTHORIZATION_FAILED)
    with pytest.raises(acl_apply.AclApplyError, match="--skip-acls"):
        acl_apply.plan(admin, [SOURCE_WRITE], ["User:source"])  # type: ignore[arg-type]


def test_the_chart_maps_every_operation_to_strimzi() -> None:
    """The Strimzi KafkaUser template knows every operation the schema allows."""
    template = (ROOT / "helm" / "advisering" / "templates" / "strimzi-kafkausers-acls.yaml")
    text = template.read_text()
    for operation in get_args(Operation):
        assert f'"{operation}" "' in text, operation
