"""Topics as code: the schema of ``topics/*.yaml`` and its loader.

The five topic names are fixed by DESIGN.md; a file may not invent others, and
every one of them must be declared exactly once. So must the worker's
repartition topic, whose name is made from the worker's app id.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from advisering.event_schema import (
    ANY_TYPE,
    DEFAULT_MAX_LENGTH,
    MAX_MAX_LENGTH,
    DataField,
    FieldKind,
    field_conflicts,
)
from advisering.events import CORE_DATA_FIELDS, CORE_EVENT_TYPES, Vocabulary
from advisering.yamlfiles import (
    FileProblem,
    YamlFileError,
    problems_from_validation,
    read_yaml_document,
    yaml_files,
)

if TYPE_CHECKING:
    from advisering.settings import Settings

CASE_EVENTS = "advisering.case-events"
NOTIFICATIONS = "advisering.notifications"
DEAD_LETTERS = "advisering.dead-letters"
AUDIT = "advisering.audit"
RULES = "advisering.rules"
TOPIC_NAMES = (CASE_EVENTS, NOTIFICATIONS, DEAD_LETTERS, AUDIT, RULES)
# The worker's repartition topic, as declared: its name with the placeholder.
CITIZEN_EVENTS = "{worker_app_id}-citizen-events"
#: The ACL declaration in the topics folder (advisering.kafka.acls), skipped here.
ACLS_FILE = "acls.yaml"

TopicName = Literal[
    "advisering.case-events",
    "advisering.notifications",
    "advisering.dead-letters",
    "advisering.audit",
    "advisering.rules",
    "{worker_app_id}-citizen-events",
]


class FieldSpec(BaseModel):
    """One declared extension field of ``data``: a type name, or a mapping with more."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldKind = "string"
    enum: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=100)
    max_length: int = Field(default=DEFAULT_MAX_LENGTH, ge=1, le=MAX_MAX_LENGTH)
    required: bool = False

    @model_validator(mode="before")
    @classmethod
    def _type_name(cls, value: Any) -> Any:
        # "deadline: date" is short for "deadline: {type: date}".
        return {"type": value} if isinstance(value, str) else value

    @field_validator("enum")
    @classmethod
    def _enum_values(cls, values: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for value in values or ():
            if not 1 <= len(value) <= DEFAULT_MAX_LENGTH:
                raise ValueError(f"enum values are 1 to {DEFAULT_MAX_LENGTH} characters")
        return values


class VocabularySpec(BaseModel):
    """The municipality's own event types, departments and data fields, beyond the core ones.

    ``data_fields`` maps an event type (or ``"*"`` for every type) to its
    extension fields of ``data``: a dotted name (``hospital.department`` is
    ``data.hospital.department``) and a type (``string``, ``integer``,
    ``number``, ``boolean``, ``date``, ``datetime``), or a mapping with
    ``type``, ``enum``, ``max_length`` and ``required``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    departments: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    data_fields: dict[str, dict[str, FieldSpec]] = Field(default_factory=dict)

    @field_validator("departments", "event_types")
    @classmethod
    def _slugs(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not value or value != value.strip().lower() or " " in value:
                raise ValueError(f"{value!r} must be a lower-case name without spaces")
        return values

    @model_validator(mode="after")
    def _fields_fit(self) -> VocabularySpec:
        known = set(CORE_EVENT_TYPES) | set(self.event_types) | {ANY_TYPE}
        problems = [f"data_fields.{event_type}: unknown event type (declare it in "
                    "event_types)" for event_type in self.data_fields if event_type not in known]
        problems += [f"data_fields: {problem}" for problem in
                     field_conflicts(CORE_DATA_FIELDS + self.declared_fields())]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def declared_fields(self) -> tuple[DataField, ...]:
        """The declared extension fields, one per (event type, dotted name)."""
        return tuple(
            DataField(event_type=event_type, path=tuple(dotted.split(".")), kind=spec.type,
                      enum=spec.enum or (), max_length=spec.max_length, required=spec.required)
            for event_type, fields in self.data_fields.items()
            for dotted, spec in fields.items()
        )


class TopicSpec(BaseModel):
    """One Kafka topic as the operators declare it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TopicName
    description: str = Field(min_length=1)
    key: str = Field(min_length=1, description="what the record key is")
    partitions: int = Field(ge=1, le=1000)
    replication_factor: int = Field(ge=1, le=7)
    config: dict[str, str]
    vocabulary: VocabularySpec | None = None

    @field_validator("config", mode="before")
    @classmethod
    def _config_as_strings(cls, value: object) -> object:
        # Kafka configs are strings on the wire; YAML gives ints and bools.
        if isinstance(value, dict):
            return {
                str(k): (str(v).lower() if isinstance(v, bool) else str(v))
                for k, v in value.items()
            }
        return value

    @field_validator("config")
    @classmethod
    def _required_configs(cls, value: dict[str, str]) -> dict[str, str]:
        for required in ("cleanup.policy", "retention.ms"):
            if required not in value:
                raise ValueError(f"config must set {required}")
        policies = set(value["cleanup.policy"].split(","))
        if not policies <= {"delete", "compact"}:
            raise ValueError("cleanup.policy must be delete, compact or compact,delete")
        return value

    @model_validator(mode="after")
    def _topic_rules(self) -> TopicSpec:
        if self.name == RULES and "compact" not in self.config["cleanup.policy"]:
            raise ValueError("advisering.rules must have cleanup.policy compact")
        if self.vocabulary is not None and self.name != CASE_EVENTS:
            raise ValueError("only advisering.case-events declares a vocabulary")
        return self

    def effective(self, partitions: int | None, replication_factor: int | None) -> TopicSpec:
        """This spec with a development override of partitions or replication factor.

        ``min.insync.replicas`` is capped at the replication factor, or a
        one-node broker could never accept a write.
        """
        replicas = replication_factor or self.replication_factor
        config = dict(self.config)
        if "min.insync.replicas" in config:
            config["min.insync.replicas"] = str(min(int(config["min.insync.replicas"]), replicas))
        return self.model_copy(
            update={
                "partitions": partitions or self.partitions,
                "replication_factor": replicas,
                "config": config,
            }
        )


def citizen_topic_name(worker_app_id: str) -> str:
    """The repartition topic of the worker with this app id."""
    return CITIZEN_EVENTS.format(worker_app_id=worker_app_id)


def load_topic_specs(directory: Path) -> dict[str, TopicSpec]:
    """The five topics of DESIGN.md, from ``directory`` (all its files are checked)."""
    specs = _load_declared(directory)
    return {name: spec for name, spec in specs.items() if name != CITIZEN_EVENTS}


def citizen_topic_spec(directory: Path, settings: Settings) -> TopicSpec:
    """The worker's repartition topic as declared, named and sized for this worker.

    Its partitions are the worker's (``worker_partitions``): its tables have
    as many, and a citizen's events must land on the partition of its state.
    """
    spec = _load_declared(directory)[CITIZEN_EVENTS]
    return spec.model_copy(update={"name": citizen_topic_name(settings.worker_app_id),
                                   "partitions": settings.worker_partitions})


def _load_declared(directory: Path) -> dict[str, TopicSpec]:
    """Load and check every ``*.yaml`` in ``directory``; all six topics must be there."""
    problems: list[FileProblem] = []
    specs: dict[str, TopicSpec] = {}
    seen_in: dict[str, Path] = {}
    # acls.yaml sits beside the topics (advisering.kafka.acls) and is not a topic.
    files = [file for file in yaml_files(directory) if file.name != ACLS_FILE]
    if not files:
        raise YamlFileError([FileProblem(directory, "", "no topic files (*.yaml) found")])
    for file in files:
        try:
            document = read_yaml_document(file)
        except YamlFileError as exc:
            problems.extend(exc.problems)
            continue
        raw = document.value
        if not isinstance(raw, dict):
            problems.append(FileProblem(file, "", "must be a mapping with name, partitions, ...",
                                        document.line_of(())))
            continue
        problems.extend(document.duplicate_key_problems(str(raw.get("name", ""))))
        try:
            spec = TopicSpec.model_validate(raw)
        except ValidationError as exc:
            problems.extend(problems_from_validation(
                file, exc, item=str(raw.get("name", "")), lines=document, model=TopicSpec))
            continue
        if spec.name in seen_in:
            problems.append(FileProblem(
                file, "name", f"{spec.name} is also declared in {seen_in[spec.name]}",
                document.line_of(("name",)),
            ))
            continue
        seen_in[spec.name] = file
        specs[spec.name] = spec
    if not problems:
        for name in (*TOPIC_NAMES, CITIZEN_EVENTS):
            if name not in specs:
                problems.append(FileProblem(directory, "", f"topic {name} is not declared"))
    if problems:
        raise YamlFileError(problems)
    return specs


def load_vocabulary(directory: Path, settings: Settings | None = None) -> Vocabulary:
    """The municipality's departments, event types and data fields: core plus declared.

    With ``settings``, the event limits (JSON depth, parties) are the configured
    ones; without, the defaults.
    """
    spec = load_topic_specs(directory)[CASE_EVENTS].vocabulary or VocabularySpec()
    limits: dict[str, int] = {}
    if settings is not None:
        limits = {"max_depth": settings.json_max_depth,
                  "max_parties": settings.event_max_parties}
    return Vocabulary.extended(spec.departments, spec.event_types, spec.declared_fields(),
                               **limits)


def default_vocabulary(directory: Path, settings: Settings | None = None) -> Vocabulary:
    """The municipality's vocabulary when ``directory`` has the topic files, else the core one.

    For the tools and the edge, which also run without ``topics/`` at hand;
    the worker uses :func:`load_vocabulary`, which insists on the files.
    """
    if (directory / "case-events.yaml").exists():
        return load_vocabulary(directory, settings)
    if settings is None:
        return Vocabulary()
    return Vocabulary(max_depth=settings.json_max_depth, max_parties=settings.event_max_parties)
