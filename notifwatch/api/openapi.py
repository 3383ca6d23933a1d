"""The read API described as an OpenAPI 3.1 document, served at /api/v1/openapi.json.

Choices (statuses, kinds, channels, categories) come from the code that checks them, so the
document cannot drift from what the filters accept; tests/api/test_openapi.py checks that every
endpoint and every queue filter is described.
"""

from notifwatch.api.reading import DEFAULT_LIMIT, MAX_LIMIT
from notifwatch.deliveries.models import Channel, FinalStatus
from notifwatch.failures.filters import FIX_OWNER_CHOICES, UNOWNED
from notifwatch.failures.forms import STATUS_FILTERS
from notifwatch.failures.models import HistoryKind, Kind, Status
from notifwatch.failures.reasons import CATEGORIES
from notifwatch.ingest.models import Outcome

DESCRIPTION = """\
Read-only JSON for support tools and scripts: the exception queue, one exception's story,
"did this customer get it?", and each source's health.

Authenticate with a personal API token (create one on the API tokens page of notifwatch):
`Authorization: Bearer nwu_…`. The token acts with its user's role: recipients and free text
are masked exactly as on the pages for roles that do not see personal data (viewer, auditor
without the grant); a user without a role gets 403. Every call is recorded in the audit trail.

Lists are paged by cursor: follow `next` until it is absent. Times are ISO 8601 in UTC; the
days of date filters are the token user's days (their time zone preference).
"""


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def query(name: str, description: str, schema: dict | None = None) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def choice(values) -> dict:
    return {"type": "string", "enum": [str(value) for value in values]}


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


TIME = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}
LIMIT = query(
    "limit",
    f"Items per page (default {DEFAULT_LIMIT}).",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
)

EXCEPTION_FILTERS = [
    query("q", "Words in the title."),
    query("source", "A source's id.", {"type": "integer"}),
    query("channel", "Channel.", choice(Channel.values)),
    query("kind", "Kind of exception.", choice(Kind.values)),
    query("category", "Reason category.", choice(CATEGORIES)),
    query("fix_owner", "Who can fix it.", choice(value for value, _ in FIX_OWNER_CHOICES)),
    query(
        "status",
        "Status; `open` (new, assigned, regressed) by default, `all` includes merged ones.",
        choice(value for value, _ in STATUS_FILTERS),
    ),
    query("owner", f"A team's id, or `{UNOWNED}` (no team and no person)."),
    query("assignee", "A person's user id.", {"type": "integer"}),
    query("seen_from", "Last seen on or after this day.", DATE),
    query("seen_to", "Last seen on or before this day.", DATE),
    query("after", "Cursor: the `next` link carries it."),
    LIMIT,
]

NOTIFICATION_PARAMETERS = [
    query("customer_id", "The customer's id, as the sender reports it."),
    query("order_id", "An order reference."),
    query("ticket_id", "A support ticket reference."),
    query("invoice_id", "An invoice reference."),
    query("recipient", "The email address or phone number it went to."),
    query("q", "Any identifier, as the search page reads it (also message ids and keys)."),
    query("source", "A source's slug."),
    query("channel", "Channel.", choice(Channel.values)),
    query("status", "Final status.", choice(FinalStatus.values)),
    query("from", "Last activity on or after this day.", DATE),
    query("to", "Last activity on or before this day.", DATE),
    query("before", "Cursor: the `next` link carries it."),
    LIMIT,
]

PERSON = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
    "required": ["id", "name"],
}

SCHEMAS = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "errors": {
                "type": "object",
                "description": "Per filter, what is wrong with it.",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
        "required": ["error"],
    },
    "Exception": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "kind": choice(Kind.values),
            "status": choice(Status.values),
            "title": {"type": "string", "description": "Masked for roles without personal data."},
            "reason": {"type": "string", "description": "Why it happened, in plain words."},
            "suggested_action": {"type": "string"},
            "fix_owner": {"type": "string", "description": "Who can fix it, in words."},
            "category": {"type": "string"},
            "where": {
                "type": "object",
                "properties": {
                    "source": nullable({"type": "string"}),
                    "channel": {"type": "string"},
                    "purpose": {"type": "string"},
                },
            },
            "impact": {
                "type": "object",
                "properties": {
                    "customers_affected": {"type": "integer"},
                    "customers_not_reached": {"type": "integer"},
                    "customers_reached_anyway": {"type": "integer"},
                    "occurrences": {"type": "integer"},
                    "occurrences_last_7_days": {"type": "integer"},
                },
            },
            "owner": {
                "type": "object",
                "properties": {"team": nullable(PERSON), "assignee": nullable(PERSON)},
            },
            "first_seen": TIME,
            "last_seen": TIME,
            "snoozed_until": nullable(TIME),
            "merged_into": nullable({"type": "integer"}),
            "url": {"type": "string", "format": "uri", "description": "Its page in notifwatch."},
        },
        "required": ["id", "kind", "status", "title", "reason", "impact", "owner", "url"],
    },
    "HistoryEntry": {
        "type": "object",
        "properties": {
            "kind": choice(HistoryKind.values),
            "at": TIME,
            "actor": {"type": "string", "description": "A person, or System · the rule."},
            "system": {"type": "boolean"},
            "what": {"type": "string"},
            "old": {"description": "The stored value before (status, team and person ids…)."},
            "new": {"description": "The stored value after."},
            "comment": {"type": "string"},
        },
        "required": ["kind", "at", "actor", "what"],
    },
    "ExceptionDetail": {
        "allOf": [
            ref("Exception"),
            {
                "type": "object",
                "properties": {
                    "facts": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "label": {"type": "string"},
                                "text": {"type": "string"},
                            },
                        },
                    },
                    "history": {"type": "array", "items": ref("HistoryEntry")},
                    "sample_notifications": {"type": "array", "items": ref("Notification")},
                },
                "required": ["facts", "history", "sample_notifications"],
            },
        ]
    },
    "Notification": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "source": {"type": "string"},
            "notification_key": {"type": "string"},
            "channel": {"type": "string"},
            "purpose": {"type": "string"},
            "purpose_words": {"type": "string"},
            "customer_id": {"type": "string"},
            "recipient": {"type": "string", "description": "Masked for roles without it."},
            "refs": {"type": "object", "additionalProperties": {"type": "string"}},
            "final_status": choice(FinalStatus.values),
            "verdict": {
                "type": "object",
                "description": "Did the customer get it, in words.",
                "properties": {
                    "tone": choice(["good", "bad", "waiting", "choice"]),
                    "headline": {"type": "string"},
                    "reason": {"type": "string"},
                    "suggested_action": {"type": "string"},
                    "fix_owner": {"type": "string"},
                    "error_code": {"type": "string"},
                    "error_message": {"type": "string"},
                },
            },
            "counts_as_failure": {"type": "boolean"},
            "attempts": {"type": "integer"},
            "duplicate_sends": {"type": "integer"},
            "first_event_at": nullable(TIME),
            "last_event_at": nullable(TIME),
            "settled_at": nullable(TIME),
            "url": {"type": "string", "format": "uri"},
        },
        "required": ["id", "source", "channel", "final_status", "verdict", "recipient", "url"],
    },
    "Source": {
        "type": "object",
        "properties": {
            "slug": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "active": {"type": "boolean"},
            "last_received": nullable(TIME),
            "last_24_hours": {
                "type": "object",
                "description": "Raw events received in the last 24 hours, by outcome.",
                "propertyNames": choice(Outcome.values),
                "additionalProperties": {"type": "integer"},
            },
            "notifications": {"type": "integer"},
            "waiting": {
                "type": "object",
                "description": "Raw events waiting for a person (reprocess).",
                "properties": {
                    "quarantined": {"type": "integer"},
                    "failed": {"type": "integer"},
                },
            },
            "rejected_calls_last_7_days": {
                "type": "object",
                "properties": {
                    "count": {"type": "integer"},
                    "since": nullable(TIME),
                    "last_reason": nullable({"type": "string"}),
                },
            },
            "url": {"type": "string", "format": "uri"},
        },
        "required": ["slug", "kind", "last_received", "last_24_hours", "waiting"],
    },
}


def page_of(schema: str) -> dict:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": ref(schema)},
            "next": {
                "type": "string",
                "format": "uri",
                "description": "The next page; absent on the last one.",
            },
        },
        "required": ["items"],
    }


def answer(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = ref("Error")
REFUSALS = {
    "401": answer("No token, or an unknown or revoked one.", ERROR),
    "403": answer("The token's user has no role.", ERROR),
}


def read(summary: str, description: str, ok: dict, parameters=(), **more) -> dict:
    return {
        "get": {
            "summary": summary,
            "description": description,
            "operationId": more.pop("operation_id"),
            "parameters": list(parameters),
            "responses": {"200": answer("OK", ok), **REFUSALS, **more},
        }
    }


def openapi_document(server: str) -> dict:
    """The document; `server` is the API's base address (…/api/v1) as the caller reached it."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "notifwatch read API", "version": "1", "description": DESCRIPTION},
        "servers": [{"url": server}],
        "security": [{"apiToken": []}],
        "paths": {
            "/exceptions": read(
                "The exception queue",
                "Open exceptions by impact (customers not reached, then occurrences in the last "
                "7 days, then all occurrences), with the queue page's filters.",
                page_of("Exception"),
                EXCEPTION_FILTERS,
                operation_id="listExceptions",
                **{"400": answer("A filter, limit or cursor does not work.", ERROR)},
            ),
            "/exceptions/{id}": read(
                "One exception",
                "Its reason, impact and owner, its facts, its history and its newest "
                "notifications.",
                ref("ExceptionDetail"),
                [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                operation_id="getException",
                **{"404": answer("No such exception.", ERROR)},
            ),
            "/notifications": read(
                "Did this customer get it?",
                "Notifications for a customer, order, ticket, invoice or recipient (give at "
                "least one; several narrow each other), newest activity first, each with its "
                "final status and the verdict in words.",
                page_of("Notification"),
                NOTIFICATION_PARAMETERS,
                operation_id="listNotifications",
                **{"400": answer("No identifier, or a filter that does not work.", ERROR)},
            ),
            "/sources": read(
                "Sources' health",
                "Each source: when it last sent, its last 24 hours by outcome, what waits for "
                "a person, and refused calls.",
                {
                    "type": "object",
                    "properties": {"items": {"type": "array", "items": ref("Source")}},
                    "required": ["items"],
                },
                operation_id="listSources",
            ),
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "description": "Public: it describes the API and holds no data.",
                    "operationId": "getOpenApi",
                    "security": [],
                    "responses": {
                        "200": answer("The OpenAPI document", {"type": "object"}),
                    },
                }
            },
            "/events": {
                "post": {
                    "summary": "Send delivery events (ingest)",
                    "description": "A source's endpoint, with that source's own token (not a "
                    "personal API token): one canonical event, a JSON array of them, or JSON "
                    "lines. See the README, “Your own code or an automation tool”.",
                    "operationId": "postEvents",
                    "security": [{"sourceToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": {
                        "200": answer("Recorded.", {"type": "object"}),
                        "202": answer("Stored; processing is retried.", {"type": "object"}),
                        "400": answer("Not JSON.", {"type": "object"}),
                        "401": answer("Wrong token.", {"type": "object"}),
                        "413": answer("Too large.", {"type": "object"}),
                        "422": answer("An event cannot be read; nothing recorded.", {}),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "apiToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal API token (nwu_…), from the API tokens page.",
                },
                "sourceToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A source's token (nw_…), from `manage.py add_source`.",
                },
            },
            "schemas": SCHEMAS,
        },
    }
