"""A rule index keyed by event type, department and KLE prefix.

Matching every rule against every event costs O(rules) per event; with
thousands of rules that dominates the engine. Most rules name one event type,
one department and one KLE subtree, and those three conditions are equality
or dot-group prefix tests, so they can be answered with dictionary look-ups
instead: an event with KLE ``32.24.06`` can only meet rules whose prefix is
``32``, ``32.24`` or ``32.24.06`` (or that have none). Every rule carries its
*position* (its place in the matcher's id-ordered tuple), so a look-up
returns candidates in rule order and the matcher checks only the conditions
the index does not answer (source, status, previous status, where).

Rules without a department condition are copied into every department's map
of their event type (a bounded copy: departments come from the vocabulary),
so a look-up reads one department map and at most four KLE keys (none, and
the event's one-, two- and three-group prefixes).

Source and status are deliberately not index keys: they have a handful of
values each, so keying on them would multiply the look-ups per event while
the type, department and KLE keys already cut the candidates to a few.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Generic, TypeVar

T = TypeVar("T")

# Key for "the rule has no condition here": every value of that dimension meets it.
ANY = None

_by_position = itemgetter(0)


@lru_cache(maxsize=65536)
def kle_prefixes(kle: str) -> tuple[str, ...]:
    """Every whole dot-group prefix of ``kle``, shortest first: 32.24.06 -> 32, 32.24, 32.24.06.

    Exactly the prefixes ``p`` for which ``kle == p or kle.startswith(p + ".")``
    holds, so the index agrees with the naive check for any string. KLE
    numbers come from a bounded plan, hence the cache.
    """
    out = [kle[:i] for i, char in enumerate(kle) if char == "."]
    out.append(kle)
    return tuple(out)


def minimal_prefixes(prefixes: Iterable[str]) -> tuple[str, ...]:
    """The prefixes not already covered by a shorter one in the same set, sorted.

    ``("32", "32.24")`` means the same as ``("32",)``. Dropping the covered
    ones means no two of a rule's prefixes lie on one path of the KLE tree,
    so an event reaches a rule through at most one KLE key and a look-up never
    returns the same rule twice.
    """
    unique = set(prefixes)
    return tuple(sorted(
        p for p in unique if not any(q in unique for q in kle_prefixes(p)[:-1])
    ))


@dataclass(frozen=True)
class IndexKeys:
    """The indexed conditions of one rule; an empty department or KLE tuple means any."""

    types: tuple[str, ...]
    departments: tuple[str, ...]
    kle: tuple[str, ...]


class Bucket(Generic[T]):
    """The rules under one key: their positions (sorted) and the rules in that order."""

    __slots__ = ("items", "positions")

    def __init__(self, pairs: list[tuple[int, T]]) -> None:
        pairs.sort(key=_by_position)
        self.positions = tuple(position for position, _ in pairs)
        self.items = tuple(item for _, item in pairs)


class RuleIndex(Generic[T]):
    """Rules by event type, then department (or ANY), then KLE prefix (or ANY)."""

    def __init__(self, rules: Sequence[tuple[IndexKeys, T]]) -> None:
        # type -> department (or ANY) -> KLE prefix (or ANY) -> (position, rule)
        raw: dict[str, dict[str | None, dict[str | None, list[tuple[int, T]]]]] = {}
        for position, (keys, item) in enumerate(rules):
            departments: Iterable[str | None] = set(keys.departments) or (ANY,)
            prefixes: Iterable[str | None] = minimal_prefixes(keys.kle) or (ANY,)
            for event_type in set(keys.types):
                by_department = raw.setdefault(event_type, {})
                for department in departments:
                    by_kle = by_department.setdefault(department, {})
                    for prefix in prefixes:
                        by_kle.setdefault(prefix, []).append((position, item))
        self._by_type: dict[str, dict[str | None, dict[str | None, Bucket[T]]]] = {}
        for event_type, by_department in raw.items():
            anywhere = by_department.get(ANY, {})
            merged: dict[str | None, dict[str | None, Bucket[T]]] = {}
            for department, by_kle in by_department.items():
                # A department's map also holds the rules that name no department.
                extra = anywhere if department is not ANY else {}
                merged[department] = {
                    prefix: Bucket(by_kle.get(prefix, []) + extra.get(prefix, []))
                    for prefix in by_kle.keys() | extra.keys()
                }
            self._by_type[event_type] = merged

    def lookup(self, event_type: str, department: str | None, kle: str | None) -> tuple[T, ...]:
        """The rules, in position order, whose type, department and KLE conditions hold.

        ``department`` and ``kle`` are None for an event without a case (the
        registries' ``citizen.*``): only rules without those conditions apply.
        """
        by_department = self._by_type.get(event_type)
        if by_department is None:
            return ()
        if department is None or kle is None:
            by_kle = by_department.get(ANY)
            bucket = by_kle.get(ANY) if by_kle is not None else None
            return bucket.items if bucket is not None else ()
        by_kle = by_department.get(department)
        if by_kle is None:
            by_kle = by_department.get(ANY)
            if by_kle is None:
                return ()
        found = [bucket for bucket in map(by_kle.get, (ANY, *kle_prefixes(kle)))
                 if bucket is not None]
        if not found:
            return ()
        if len(found) == 1:
            return found[0].items
        # A rule sits under one KLE key per event (see minimal_prefixes), so the
        # buckets are disjoint; sorting by position restores rule order.
        pairs = sorted(
            (pair for bucket in found for pair in zip(bucket.positions, bucket.items, strict=True)),
            key=_by_position,
        )
        return tuple(item for _, item in pairs)

    def of_type(self, event_type: str) -> tuple[T, ...]:
        """Every rule naming ``event_type``, whatever its other keys, in position order."""
        pairs = {
            position: item
            for by_kle in self._by_type.get(event_type, {}).values()
            for bucket in by_kle.values()
            for position, item in zip(bucket.positions, bucket.items, strict=True)
        }
        return tuple(pairs[position] for position in sorted(pairs))
