"""What each source system may publish (its grants), and the check of one event against them.

An API key (or, on Kafka, an event's ``source``) says who speaks; the grants
say what that source may say. Without them a job centre's key could announce
a citizen's death or open a children's case naming any caseworker, and the
engine would tell that caseworker about the citizen.

Patterns for event types are deliberately few:

- an exact type from the vocabulary, ``case.opened``;
- a family, ``case.*``: every type ``case.<something>``, also ones declared later.

There is no bare ``*``: registry events (``citizen.*``: moves, admissions,
deaths) come from the registries, and a pattern grants them only when it
names ``citizen.`` itself (``citizen.*`` or ``citizen.deceased``).
Departments are exact names, no wildcard, so a department added to the
vocabulary later is granted to nobody by accident. They are checked against
``data.case.department``; the registries' ``citizen.*`` events carry no case,
so a registry source needs no department.

Pure: no Kafka, no Faust, no files. The sources file (``web/sources.py``)
holds :class:`Grants` per source; :class:`GrantCheck` is what serve and the
worker ask per event, a few set lookups.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advisering.events import CaseEvent, Rejection, RejectReason, Vocabulary, needs_case

_TYPE_PATTERN = r"^[a-z]+\.(?:[a-z-]+|\*)$"
_DEPARTMENT = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_PATTERNS = 200  # a source with more grants than this is a configuration mistake


class Grants(BaseModel):
    """The event types (exact or ``family.*``) and departments one source may publish."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: tuple[str, ...] = Field(default=(), max_length=MAX_PATTERNS)
    departments: tuple[str, ...] = Field(default=(), max_length=MAX_PATTERNS)

    @field_validator("types")
    @classmethod
    def _type_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if pattern in {"*", "*.*"}:
                raise ValueError(
                    f"{pattern!r} is not allowed: name each family (case.*, benefit.*, ...); "
                    "citizen.* registry types only where the source is a registry")
            if not re.fullmatch(_TYPE_PATTERN, pattern):
                raise ValueError(f"type pattern {pattern!r} must be an event type such as "
                                 "case.opened or a family such as case.*")
        return tuple(dict.fromkeys(value))

    @field_validator("departments")
    @classmethod
    def _department_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.fullmatch(_DEPARTMENT, name):
                raise ValueError(f"department {name!r} must be a department name such as "
                                 "jobcenter (no wildcards)")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _cases_need_departments(self) -> Grants:
        with_case = [p for p in self.types if needs_case(p)]
        if with_case and not self.departments:
            raise ValueError(
                f"{', '.join(with_case)} carry a case: grant the departments whose cases "
                "this source may publish (departments)")
        return self

    def is_empty(self) -> bool:
        """No event type granted: every event of the source is refused."""
        return not self.types

    def allows_type(self, event_type: str) -> bool:
        """The type is granted exactly or through its ``family.*``."""
        family = event_type.split(".", 1)[0]
        return event_type in self.types or f"{family}.*" in self.types

    def describe(self) -> str:
        """One line for `sources list`."""
        types = ",".join(self.types) or "-"
        departments = ",".join(self.departments) or "-"
        return f"types {types}; departments {departments}"


def parse_list(text: str | None) -> tuple[str, ...]:
    """``"a, b,c"`` as ``("a", "b", "c")`` (the CLI's comma lists); None or blank: ()."""
    if not text:
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())


def vocabulary_problems(grants: Grants, vocabulary: Vocabulary) -> list[tuple[str, str]]:
    """(path, message) for each granted type or department the vocabulary does not know.

    A family must hold at least one known type: ``benfit.*`` granting nothing
    would only hide a typo.
    """
    problems: list[tuple[str, str]] = []
    known_types = sorted(vocabulary.event_types)
    for position, pattern in enumerate(grants.types):
        if pattern.endswith(".*"):
            family = pattern[:-1]
            if not any(t.startswith(family) for t in known_types):
                families = sorted({t.split(".", 1)[0] + ".*" for t in known_types})
                problems.append((f"types[{position}]", f"no event type of the vocabulary is "
                                 f"in {pattern!r}{_hint(pattern, families)}"))
        elif pattern not in vocabulary.event_types:
            problems.append((f"types[{position}]", f"unknown event type {pattern!r}"
                             f"{_hint(pattern, known_types)}"))
    for position, name in enumerate(grants.departments):
        if name not in vocabulary.departments:
            problems.append((f"departments[{position}]", f"unknown department {name!r}"
                             f"{_hint(name, sorted(vocabulary.departments))}"))
    return problems


def _hint(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else " (see topics/case-events.yaml)"


@dataclass(frozen=True)
class _Compiled:
    exact: frozenset[str]
    families: frozenset[str]  # "case" for "case.*"
    departments: frozenset[str]
    empty: bool


def _compile(grants: Grants | None) -> _Compiled:
    if grants is None:
        return _Compiled(frozenset(), frozenset(), frozenset(), True)
    return _Compiled(
        exact=frozenset(p for p in grants.types if not p.endswith(".*")),
        families=frozenset(p[:-2] for p in grants.types if p.endswith(".*")),
        departments=frozenset(grants.departments),
        empty=grants.is_empty(),
    )


class GrantCheck:
    """Every registered source's grants, compiled for a cheap check per event.

    A source registered without grants (a sources file from before grants
    existed) is known but granted nothing: each of its events is refused
    ``not_granted`` until an operator runs ``advisering sources grant``.
    """

    def __init__(self, grants: Mapping[str, Grants | None]) -> None:
        self._grants = {name: _compile(g) for name, g in grants.items()}

    def __contains__(self, source: str) -> bool:
        return source in self._grants

    def refusal(self, event: CaseEvent) -> Rejection | None:
        """Why ``event`` may not be published by its ``source``, or None when it may.

        The event was validated first: its type and department are vocabulary
        names and its source a plain name, so the message may name them.
        """
        source = event.source
        grant = self._grants.get(source)
        if grant is None:
            return Rejection(RejectReason.UNKNOWN_SOURCE, "source",
                             f"source {source!r} is not registered in the sources file")
        event_type = event.type
        if event_type not in grant.exact and event_type.split(".", 1)[0] not in grant.families:
            note = " (it has no grants: advisering sources grant)" if grant.empty else ""
            return Rejection(RejectReason.NOT_GRANTED, "type",
                             f"source {source!r} is not granted event type {event_type!r}{note}")
        case = event.data.case
        if case is not None and case.department not in grant.departments:
            return Rejection(RejectReason.NOT_GRANTED, "data.case.department",
                             f"source {source!r} is not granted department {case.department!r}")
        return None
