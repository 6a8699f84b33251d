"""ACLs as code: the schema of ``topics/acls.yaml`` and the bindings it declares.

One entry per component principal lists what that principal may do, and
nothing else is allowed it: ``advisering topics apply`` creates the missing
bindings and removes every other binding of the principals the file names
(:mod:`advisering.kafka.acl_apply`). Principals the file does not name (a
super user, another application's users) are never touched.

Topic names are the ones DESIGN.md fixes, or the worker's own topics: a name
may hold ``{worker_app_id}`` (the worker's app id, prefix of its changelog,
repartition and leader topics and its consumer group) and, for groups,
``{inbox_group}``; both are filled from the settings, so the file stays the
same for every deployment. The principal names are the deployment's own
(``User:<SCRAM user>``, or ``User:CN=...`` for client certificates): edit
them, or keep a copy of the file and pass it with ``--acls``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from advisering.kafka.topics import CITIZEN_EVENTS, TOPIC_NAMES
from advisering.yamlfiles import (
    FileProblem,
    YamlFileError,
    problems_from_validation,
    read_yaml_document,
)

if TYPE_CHECKING:
    from advisering.settings import Settings

MAX_PRINCIPALS = 50
MAX_GRANTS = 100

Operation = Literal["read", "write", "create", "delete", "alter", "describe",
                    "describe_configs", "alter_configs", "idempotent_write", "cluster_action"]
ResourceKind = Literal["topic", "group", "cluster", "transactional_id"]
Pattern = Literal["literal", "prefixed"]

#: What Kafka's authorizer checks on each resource type.
ALLOWED_OPERATIONS: dict[str, frozenset[str]] = {
    "topic": frozenset({"read", "write", "create", "delete", "alter", "describe",
                        "describe_configs", "alter_configs"}),
    "group": frozenset({"read", "describe", "delete"}),
    "cluster": frozenset({"create", "alter", "describe", "describe_configs", "alter_configs",
                          "idempotent_write", "cluster_action"}),
    "transactional_id": frozenset({"write", "describe"}),
}
PLACEHOLDERS = ("{worker_app_id}", "{inbox_group}", "{audit_group}")
CLUSTER_NAME = "kafka-cluster"  # the one name of Kafka's cluster resource
_PRINCIPAL = re.compile(r"^User:[A-Za-z0-9._@=,+-]{1,128}$")
_GROUP = re.compile(r"^[A-Za-z0-9._{}-]{1,200}$")
_KNOWN_TOPICS = (*TOPIC_NAMES, CITIZEN_EVENTS)


class Grant(BaseModel):
    """Operations on one resource: a topic, a group, the cluster or a transactional id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str | None = Field(default=None, max_length=249)
    group: str | None = Field(default=None, max_length=200)
    transactional_id: str | None = Field(default=None, max_length=200)
    cluster: bool = False
    pattern: Pattern = "literal"
    operations: tuple[Operation, ...] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _one_resource(self) -> Grant:
        named = [kind for kind in ("topic", "group", "transactional_id")
                 if getattr(self, kind) is not None] + (["cluster"] if self.cluster else [])
        if len(named) != 1:
            raise ValueError("name exactly one resource: topic, group, transactional_id "
                             "or cluster: true")
        kind = self.kind
        wrong = sorted(set(self.operations) - ALLOWED_OPERATIONS[kind])
        if wrong:
            raise ValueError(f"{', '.join(wrong)} is not an operation on a {kind} (allowed: "
                             f"{', '.join(sorted(ALLOWED_OPERATIONS[kind]))})")
        if len(set(self.operations)) != len(self.operations):
            raise ValueError("an operation is listed twice")
        if kind == "cluster" and self.pattern != "literal":
            raise ValueError("the cluster resource takes no pattern")
        bare = self.name
        for placeholder in PLACEHOLDERS:
            bare = bare.replace(placeholder, "")
        if "{" in bare or "}" in bare:
            raise ValueError(f"{self.name!r}: the only placeholders are {', '.join(PLACEHOLDERS)}")
        if kind == "topic":
            _check_topic(str(self.topic), self.pattern)
        elif kind != "cluster" and not _GROUP.match(self.name):
            raise ValueError(f"{kind} {self.name!r} must be letters, digits, '.', '_', '-' "
                             f"or a placeholder ({', '.join(PLACEHOLDERS)})")
        return self

    @property
    def kind(self) -> ResourceKind:
        """Which resource type this grant is on."""
        if self.topic is not None:
            return "topic"
        if self.group is not None:
            return "group"
        if self.transactional_id is not None:
            return "transactional_id"
        return "cluster"

    @property
    def name(self) -> str:
        """The resource name as written (placeholders unfilled); the cluster's fixed name."""
        return self.topic or self.group or self.transactional_id or CLUSTER_NAME


def _check_topic(name: str, pattern: str) -> None:
    if pattern == "literal" and name in _KNOWN_TOPICS:
        return
    if pattern == "prefixed" and name.startswith("{worker_app_id}"):
        return
    raise ValueError(
        f"unknown topic {name!r}: a literal topic is one of {', '.join(_KNOWN_TOPICS)}; a "
        "prefixed one starts with {worker_app_id} (the worker's internal topics)")


class PrincipalAcls(BaseModel):
    """One component's principal and everything it is allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    component: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    principal: str
    description: str | None = Field(default=None, max_length=500)
    allow: tuple[Grant, ...] = Field(min_length=1, max_length=MAX_GRANTS)

    @field_validator("principal")
    @classmethod
    def _principal(cls, value: str) -> str:
        if not _PRINCIPAL.match(value):
            raise ValueError("a principal is User:<name> (letters, digits and . _ @ = , + -; "
                             "at most 128 characters)")
        return value


class AclFile(BaseModel):
    """The whole of ``acls.yaml``: the managed principals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    principals: tuple[PrincipalAcls, ...] = Field(min_length=1, max_length=MAX_PRINCIPALS)


@dataclass(frozen=True, order=True)
class AclEntry:
    """One ALLOW binding for any host, with its placeholders filled."""

    principal: str
    resource: ResourceKind
    name: str
    pattern: Pattern
    operation: Operation

    def describe(self) -> str:
        """``User:x read topic advisering.rules`` (``prefixed`` noted)."""
        prefixed = " (prefix)" if self.pattern == "prefixed" else ""
        return f"{self.principal} {self.operation} {self.resource} {self.name}{prefixed}"


def load_acls(path: Path) -> AclFile:
    """Load and check ``path``; every problem names the file and, where known, the principal."""
    document = read_yaml_document(path)
    problems: list[FileProblem] = list(document.duplicate_key_problems())
    raw = document.value
    if not isinstance(raw, dict) or not isinstance(raw.get("principals"), list):
        raise YamlFileError([FileProblem(path, "principals", "must be a mapping with a list "
                                         "'principals'", document.line_of(()))])
    try:
        acls = AclFile.model_validate(raw)
    except ValidationError as exc:
        entries = raw["principals"]
        found = problems_from_validation(path, exc, lines=document, model=AclFile)
        # pydantic adds "at least 1 item" to every tuple above an invalid item: noise.
        found = [p for p in found if not (p.message.startswith("Tuple should have at least")
                                          and any(o.path.startswith(p.path + ".") for o in found))]
        for problem in found:
            position = problem.path.split(".")[1] if problem.path.count(".") else ""
            item = None
            if position.isdigit() and int(position) < len(entries) and isinstance(
                    entries[int(position)], dict):
                item = str(entries[int(position)].get("principal", "")) or None
            problems.append(FileProblem(problem.file, problem.path, problem.message,
                                        problem.line, item=item, hint=problem.hint))
        raise YamlFileError(problems) from None
    seen: dict[str, int] = {}
    components: set[str] = set()
    for index, entry in enumerate(acls.principals):
        if entry.principal in seen:
            problems.append(FileProblem(
                path, f"principals.{index}.principal",
                f"principal given twice (also entry {seen[entry.principal]})",
                document.line_of(("principals", index, "principal")), item=entry.principal))
        seen.setdefault(entry.principal, index)
        if entry.component in components:
            problems.append(FileProblem(
                path, f"principals.{index}.component", f"component {entry.component} given twice",
                document.line_of(("principals", index, "component")), item=entry.principal))
        components.add(entry.component)
    if problems:
        raise YamlFileError(problems)
    return acls


def acl_entries(acls: AclFile, settings: Settings) -> frozenset[AclEntry]:
    """Every binding ``acls`` declares, placeholders filled from ``settings``."""
    values = {"worker_app_id": settings.worker_app_id, "inbox_group": settings.inbox_group,
              "audit_group": settings.audit_group}
    return frozenset(
        AclEntry(entry.principal, grant.kind, grant.name.format(**values), grant.pattern,
                 operation)
        for entry in acls.principals for grant in entry.allow for operation in grant.operations
    )


def managed_principals(acls: AclFile) -> tuple[str, ...]:
    """The principals whose bindings ``topics apply`` owns."""
    return tuple(entry.principal for entry in acls.principals)
