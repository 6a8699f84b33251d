"""The OpenAPI 3.1 document of advisering's HTTP API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from advisering import __version__

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


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "advisering",
            "version": __version__,
            "description": "Cross-system advisory bus: HTTP ingest for source systems.",
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "the source system's API key (advisering sources add)"},
            },
            "schemas": {
                "Problem": _PROBLEM,
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
                            {"type": "array",
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
                        "403": _problem("an event's source is not the key's source"),
                        "413": _problem("body or batch too large"),
                        "415": _problem("unsupported content type"),
                        "422": _problem("invalid events, with index and field path of each"),
                        "503": _problem("Kafka unavailable; retry after Retry-After seconds"),
                    },
                },
            },
            "/healthz": {"get": {"summary": "the process is alive",
                                 "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Kafka answers",
                                "responses": {"200": {"description": "ready"},
                                              "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text exposition"}}}},
        },
    }
