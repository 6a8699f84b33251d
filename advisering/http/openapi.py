"""The OpenAPI 3.1 document of advisering's HTTP API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from advisering import __version__
from advisering.inbox.api import MAX_OFFSET, MAX_PAGE, MAX_REASON
from advisering.inbox.store import SEVERITY_ORDER

_PROBLEM = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": ["integer", "null"],
                              "description": "position of the event in the request"},
                    "reason": {"type": "string"},
                    "path": {"type": "string", "description": "dotted field path"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}


_INBOX_ITEM = {
    "type": "object", "required": ["id", "recipient", "related_case"],
    "description": "A notification as the inbox shows it: never the citizen's pseudonym "
                   "(the caseworker knows the citizen through their own related_case).",
    "properties": {"id": {"type": "string"}, "recipient": {"type": "object"},
                   "related_case": {"type": "object"}, "citizen": False},
}
_ITEM = {"$ref": "#/components/schemas/InboxItem"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def openapi_document(max_events: int) -> dict[str, Any]:
    """The document for this server: ``max_events`` is its batch limit (ingest_max_events)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "advisering",
            "version": __version__,
            "description": "Cross-system advisory bus: HTTP ingest for source systems and "
                           "the caseworkers' inbox.",
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "the source system's API key (advisering sources add)"},
                "caseworker": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                               "description": "HS256 token: iss, aud, sub (caseworker), "
                                              "dept, optional unit, iat, exp, nbf, jti "
                                              "(advisering token issue); optional roles "
                                              "(insight)"},
            },
            "schemas": {
                "Problem": _PROBLEM,
                "InboxItem": _INBOX_ITEM,
                "CaseEvent": {
                    "type": "object",
                    "description": "CloudEvents 1.0 structured JSON; see DESIGN.md. Parties may "
                                   "be given as {\"cpr\": ...} and are pseudonymised at ingest.",
                    "required": ["specversion", "id", "source", "type", "time", "data"],
                    "properties": {
                        "specversion": {"const": "1.0"},
                        "id": {"type": "string"},
                        "source": {"type": "string"},
                        "type": {"type": "string"},
                        "time": {"type": "string", "format": "date-time"},
                        "subject": {"type": "string"},
                        "datacontenttype": {"const": "application/json"},
                        "data": {"type": "object"},
                    },
                },
            },
        },
        "paths": {
            "/api/v1/events": {
                "post": {
                    "summary": "Publish one case event, a batch, or NDJSON",
                    "description": "All-or-nothing per request. 202 only after Kafka confirmed "
                                   "every event. Resending the same (source, id) is safe.",
                    "security": [{"apiKey": []}],
                    "requestBody": {"required": True, "content": {
                        "application/json": {"schema": {"oneOf": [
                            {"$ref": "#/components/schemas/CaseEvent"},
                            {"type": "array", "minItems": 1, "maxItems": max_events,
                             "items": {"$ref": "#/components/schemas/CaseEvent"}},
                        ]}},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    }},
                    "responses": {
                        "202": {"description": "every event is durably in Kafka",
                                "content": {"application/json": {"schema": {
                                    "type": "object",
                                    "properties": {"accepted": {"type": "integer"},
                                                   "ids": {"type": "array",
                                                           "items": {"type": "string"}}}}}}},
                        "401": _problem("missing or unknown API key"),
                        "403": _problem("an event's source is not the key's source "
                                        "(forbidden), or an event type or department the "
                                        "source is not granted (not_granted, per event)"),
                        "413": _problem("body or batch too large"),
                        "415": _problem("unsupported content type"),
                        "422": _problem("invalid events, with index and field path of each"),
                        "503": _problem("Kafka unavailable; retry after Retry-After seconds"),
                    },
                },
            },
            **_inbox_paths(),
            **_insight_paths(),
            "/healthz": {"get": {"summary": "the process is alive",
                                 "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Kafka answers",
                                "responses": {"200": {"description": "ready"},
                                              "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text exposition"}}}},
        },
    }


def _page() -> dict[str, Any]:
    """A page of the list, with links that take the first item's id to its own operations."""
    first = {"id": "$response.body#/items/0/id"}
    return {"description": "OK", "content": {"application/json": {"schema": {
        "type": "object", "required": ["items", "total", "unread", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": _ITEM},
            **{name: {"type": "integer", "minimum": 0}
               for name in ("total", "unread", "limit", "offset")}}}}},
        "links": {operation: {"operationId": operation, "parameters": first}
                  for operation in ("getNotification", "markRead", "giveFeedback")}}


def _me() -> dict[str, Any]:
    text = {"type": "string"}
    return {"description": "OK", "content": {"application/json": {"schema": {
        "type": "object", "required": ["caseworker", "department", "unit"],
        "additionalProperties": False,
        "properties": {"caseworker": text, "department": text,
                       "unit": {"type": ["string", "null"]}}}}}}


def _inbox_paths() -> dict[str, Any]:
    """The caseworker inbox: every call needs a caseworker token; others' items are 404."""
    secured: dict[str, Any] = {"security": [{"caseworker": []}]}
    item = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    ok = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    one = {"description": "OK", "content": {"application/json": {"schema": _ITEM}}}
    denied = {"401": _problem("missing, malformed, forged, foreign (aud, iss), not yet valid, "
                              "too long-lived, expired or revoked token")}
    missing = {"404": _problem("no such notification for this caseworker")}
    return {
        "/api/v1/notifications": {"get": {
            **secured, "summary": "my notifications, unread first, newest first",
            "parameters": [
                {"name": "unread", "in": "query", "schema": {"type": "boolean"}},
                {"name": "severity", "in": "query",
                 "schema": {"enum": list(SEVERITY_ORDER)}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
                {"name": "offset", "in": "query",
                 "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}},
            ],
            "responses": {"200": _page(), "400": _problem("bad filter or paging"), **denied}}},
        "/api/v1/notifications/{id}": {"get": {
            **secured, "operationId": "getNotification", "summary": "one notification",
            "parameters": [item], "responses": {"200": one, **denied, **missing}}},
        "/api/v1/notifications/{id}/read": {"post": {
            **secured, "operationId": "markRead", "summary": "mark one read",
            "parameters": [item], "responses": {"200": ok, **denied, **missing}}},
        "/api/v1/notifications/read-all": {"post": {
            **secured, "summary": "mark all of mine read",
            "responses": {"200": ok, **denied}}},
        "/api/v1/notifications/{id}/feedback": {"post": {
            **secured, "operationId": "giveFeedback",
            "summary": "useful or not useful, with an optional short reason",
            "parameters": [item],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["useful"], "additionalProperties": False,
                "properties": {"useful": {"type": "boolean"},
                               "reason": {"type": ["string", "null"], "maxLength": MAX_REASON,
                                          "description": "null or absent: no reason"}}}}}},
            "responses": {"200": ok, "400": _problem("not JSON"),
                          "422": _problem("invalid feedback"), **denied, **missing}}},
        "/api/v1/stream": {"get": {
            **secured, "summary": "new notifications live (Server-Sent Events)",
            "description": "The token may be given as access_token (EventSource sends no "
                           "headers). Events are named notification (data: an InboxItem "
                           "without read state). The stream ends with one last event: "
                           "reload (the client fell behind), expired or revoked (the "
                           "token), or replaced (the token opened more streams than allowed).",
            "parameters": [{"name": "access_token", "in": "query",
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "text/event-stream"}, **denied}}},
        "/api/v1/me": {"get": {**secured, "summary": "who the token is for",
                               "responses": {"200": _me(), **denied}}},
    }


def _insight_paths() -> dict[str, Any]:
    """A citizen's disclosure log, for tokens with the insight role; the CPR in the body only."""
    day = {"type": ["string", "null"], "format": "date",
           "description": "YYYY-MM-DD, Danish time, inclusive; null or absent: open"}
    return {"/api/v1/insight": {"post": {
        "security": [{"caseworker": []}], "operationId": "citizenInsight",
        "summary": "every disclosure about one citizen (token role: insight)",
        "description": "The CPR number goes in the body, never in the URL: any query string "
                       "is refused. Each lookup is recorded in the audit store.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["cpr"], "additionalProperties": False,
            "properties": {"cpr": {"type": "string", "pattern": "^[0-9]{6}-?[0-9]{4}$",
                                   "description": "DDMMYYXXXX or DDMMYY-XXXX"},
                           "from": day, "to": day}}}}},
        "responses": {
            "200": {"description": "the disclosures, oldest first (InsightReport)",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
            "400": _problem("a query string, or a body that is no JSON object"),
            "401": _problem("missing, forged, expired or revoked token, or an unknown role"),
            "403": _problem("the token has no insight role"),
            "413": _problem("the body is larger than ADVISERING_INSIGHT_MAX_BODY_BYTES"),
            "422": _problem("no valid CPR number, a bad date, or an unknown field")}}}}
