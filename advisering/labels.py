"""The Danish words a caseworker reads: departments, event types and severities.

One table for every place that shows them: the engine's notification texts,
the demo's printout, the e-mail digest and the inbox page (which gets them
from :func:`labels_json`, injected into its HTML by the inbox service).
"""

from __future__ import annotations

import orjson

DEPARTMENT_NAMES = {
    "jobcenter": "jobcentret",
    "ydelse": "ydelsesområdet",
    "boern-familie": "børn og familie",
    "aeldre": "ældreområdet",
    "handicap-psykiatri": "handicap og psykiatri",
    "sundhed": "sundhedsområdet",
    "skole": "skoleområdet",
    "borgerservice": "borgerservice",
}
EVENT_NAMES = {
    "case.opened": "ny sag",
    "case.status-changed": "ændret sagsstatus",
    "case.closed": "afsluttet sag",
    "case.reassigned": "ny sagsbehandler",
    "case.party-added": "ny part i sagen",
    "case.party-removed": "part fjernet fra sagen",
    "document.added": "nyt dokument",
    "appointment.missed": "udeblivelse fra aftale",
    "benefit.changed": "ændret ydelse",
    "citizen.moved": "flytning",
    "citizen.admitted": "indlæggelse",
    "citizen.discharged": "udskrivning",
    "citizen.deceased": "dødsfald",
}
# Lower case, as in running text; a badge or a heading capitalises it.
SEVERITY_NAMES = {"high": "høj", "normal": "normal", "info": "info"}


def department_name(slug: str) -> str:
    """The department's Danish name, or its slug when it is the municipality's own."""
    return DEPARTMENT_NAMES.get(slug, slug)


def event_name(event_type: str) -> str:
    """The event type in Danish, or the type itself when it is the municipality's own."""
    return EVENT_NAMES.get(event_type, event_type)


def severity_name(severity: str) -> str:
    """The severity in Danish (lower case), or the value itself when unknown."""
    return SEVERITY_NAMES.get(severity, severity)


def labels_json() -> bytes:
    """The three tables as one JSON object, for the inbox page."""
    return orjson.dumps({"departments": DEPARTMENT_NAMES, "events": EVENT_NAMES,
                         "severities": SEVERITY_NAMES})
