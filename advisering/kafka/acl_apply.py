"""`advisering topics apply`, the ACL half: make the cluster's ACLs match ``acls.yaml``.

As with topics, a plan first: the bindings the file declares that the
cluster lacks are created, and every other binding of a principal the file
names is removed (a DENY, another host, a grant taken out of the file), so
the file is the whole truth about those principals. Principals the file
does not name are never read or changed. A broker without an authorizer
answers ``SECURITY_DISABLED``: :class:`AclsUnsupported` says so, and the
command skips the ACLs with a note (the plaintext development broker).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
)

from advisering.kafka.acls import AclEntry
from advisering.kafka.apply import TopicApplyError
from advisering.log import get_logger

log = get_logger(__name__)

_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
              "cluster": ResourceType.BROKER, "transactional_id": ResourceType.TRANSACTIONAL_ID}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
ANY_HOST = "*"


class AclApplyError(TopicApplyError):
    """The ACLs cannot be read or changed; the message says why and what to do."""


class AclsUnsupported(AclApplyError):
    """The cluster has no authorizer (``SECURITY_DISABLED``): there are no ACLs to apply."""


Key = tuple[str, str, str, str, str, str, str]


def binding_of(entry: AclEntry) -> AclBinding:
    """The confluent-kafka ALLOW binding (any host) of a declared entry."""
    return AclBinding(_RESOURCES[entry.resource], entry.name, _PATTERNS[entry.pattern],
                      entry.principal, ANY_HOST, AclOperation[entry.operation.upper()],
                      AclPermissionType.ALLOW)


def key_of(binding: AclBinding) -> Key:
    """What makes two bindings the same, as plain text (the enums by name)."""
    return (binding.principal, _name(binding.restype), binding.name,
            _name(binding.resource_pattern_type), _name(binding.operation),
            _name(binding.permission_type), binding.host)


def _name(value: object) -> str:
    """An enum member's name (the library types these fields as enum, str or int)."""
    return str(getattr(value, "name", value))


def describe_binding(binding: AclBinding) -> str:
    """``User:x read topic advisering.rules`` with the pattern, host and DENY when unusual."""
    kind = "cluster" if binding.restype == ResourceType.BROKER else _name(binding.restype).lower()
    text = f"{binding.principal} {_name(binding.operation).lower()} {kind} {binding.name}"
    if binding.resource_pattern_type == ResourcePatternType.PREFIXED:
        text += " (prefix)"
    if binding.permission_type != AclPermissionType.ALLOW:
        text += f" [{_name(binding.permission_type)}]"
    if binding.host != ANY_HOST:
        text += f" [host {binding.host}]"
    return text


@dataclass(frozen=True)
class AclPlan:
    """The bindings to create and to remove, and how many already match."""

    create: tuple[AclBinding, ...]
    remove: tuple[AclBinding, ...]
    unchanged: int

    def lines(self) -> list[str]:
        """The plan as `topics apply` prints it, aligned like the topic plan."""
        lines = [f"create     {describe_binding(b)}" for b in self.create]
        lines += [f"remove     {describe_binding(b)}" for b in self.remove]
        if self.unchanged:
            lines.append(f"unchanged  {self.unchanged} ACL binding"
                         f"{'s' if self.unchanged != 1 else ''}")
        return lines

    @property
    def empty(self) -> bool:
        """True when the cluster already matches the file."""
        return not self.create and not self.remove


def plan(admin: AdminClient, wanted: Iterable[AclEntry], principals: Iterable[str],
         timeout: float = 15.0) -> AclPlan:
    """Compare the declared bindings with those the cluster has for ``principals``."""
    declared = {key_of(binding): binding for binding in map(binding_of, wanted)}
    if authorizer_of(admin, timeout) == "":
        raise AclsUnsupported("the cluster has no authorizer (authorizer.class.name is empty)")
    existing: dict[Key, AclBinding] = {}
    for principal in principals:
        for binding in describe(admin, principal, timeout):
            existing[key_of(binding)] = binding
    return AclPlan(
        create=tuple(declared[k] for k in sorted(declared.keys() - existing.keys())),
        remove=tuple(existing[k] for k in sorted(existing.keys() - declared.keys())),
        unchanged=len(declared.keys() & existing.keys()),
    )


def authorizer_of(admin: AdminClient, timeout: float) -> str | None:
    """A broker's ``authorizer.class.name`` ("" for none); None when it cannot be read.

    Kafka 4 answers DescribeAcls without an authorizer with an empty list, not
    ``SECURITY_DISABLED`` (only CreateAcls refuses), so the plan asks first.
    A principal without DescribeConfigs on the cluster cannot tell: None, and
    the ACL requests themselves will say what is wrong.
    """
    try:
        brokers = admin.list_topics(timeout=timeout).brokers
        resource = ConfigResource(ResourceType.BROKER, str(min(brokers)))
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(
            timeout=2 * timeout)
    except (KafkaException, ValueError):
        return None
    entry = entries.get("authorizer.class.name")
    return None if entry is None else str(entry.value or "")


def describe(admin: AdminClient, principal: str, timeout: float) -> list[AclBinding]:
    """Every binding of ``principal``; raises :class:`AclsUnsupported` without an authorizer."""
    # None matches any name and host (the library's documented filter; its stubs say str).
    query = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,  # type: ignore[arg-type]
                             principal, None, AclOperation.ANY, AclPermissionType.ANY)  # type: ignore[arg-type]
    try:
        found = admin.describe_acls(query, request_timeout=timeout).result(timeout=2 * timeout)
    except KafkaException as exc:
        raise _explained(exc, "read") from None
    return list(found or [])


def execute(admin: AdminClient, acl_plan: AclPlan, timeout: float = 30.0) -> None:
    """Carry out a plan made by :func:`plan`: create first, then remove."""
    if acl_plan.create:
        _wait_all(admin.create_acls(list(acl_plan.create), request_timeout=timeout), "create")
    if acl_plan.remove:
        exact = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal,
                                  b.host, b.operation, b.permission_type)
                 for b in acl_plan.remove]
        _wait_all(admin.delete_acls(exact, request_timeout=timeout), "remove")
    for binding in acl_plan.create:
        log.info("acl_applied", action="create", principal=binding.principal,
                 resource=binding.name, operation=_name(binding.operation))
    for binding in acl_plan.remove:
        log.info("acl_applied", action="remove", principal=binding.principal,
                 resource=binding.name, operation=_name(binding.operation))


def _explained(exc: KafkaException, what: str) -> AclApplyError:
    error = exc.args[0] if exc.args else None
    code = error.code() if isinstance(error, KafkaError) else None
    if code == KafkaError.SECURITY_DISABLED:
        return AclsUnsupported("the cluster has no authorizer (SECURITY_DISABLED)")
    if code == KafkaError.CLUSTER_AUTHORIZATION_FAILED:
        return AclApplyError(
            f"Kafka refused to {what} ACLs: the principal running `topics apply` may not "
            "manage ACLs. Run it as a super user (the local secure broker's admin.env), or "
            "pass --skip-acls where ACLs are managed elsewhere (Strimzi KafkaUser).")
    return AclApplyError(f"Kafka refused to {what} ACLs: {exc}")


def _wait_all(futures: Mapping[Any, Future[Any]], what: str) -> None:
    errors = []
    for key, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            errors.append(f"{describe_binding(key) if isinstance(key, AclBinding) else key}: "
                          f"{_explained(exc, what)}")
    if errors:
        raise AclApplyError(f"Kafka refused to {what} ACLs: " + "; ".join(errors))
