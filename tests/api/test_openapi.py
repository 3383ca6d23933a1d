import re

from django.urls import reverse
from openapi_spec_validator import validate

from bench.reliability.access import url_patterns
from notifwatch.api.reading import LOOKUP_PARAMS
from notifwatch.deliveries.filters import NotificationFilter
from notifwatch.failures.filters import QueueFilter

URL = reverse("api_openapi")
PREFIX = "api/v1/"


def document(client) -> dict:
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()


def documented_path(route: str) -> str:
    """`api/v1/exceptions/<int:pk>` as the document writes it: `/exceptions/{id}`."""
    return "/" + re.sub(r"<(?:\w+:)?\w+>", "{id}", route.removeprefix(PREFIX))


def parameters(doc: dict, path: str) -> set[str]:
    return {p["name"] for p in doc["paths"][path]["get"]["parameters"]}


def test_it_is_a_valid_openapi_3_1_document_served_without_a_token(client, db):
    doc = document(client)

    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": "http://testserver/api/v1"}]
    assert doc["components"]["securitySchemes"]["apiToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["apiToken"]["description"],
    }


def test_it_describes_every_endpoint_under_api_v1(client, db):
    doc = document(client)
    routes = [p.route for p in url_patterns() if p.route.startswith(PREFIX)]

    assert len(routes) >= 6
    for route in routes:
        assert documented_path(route) in doc["paths"], route
    assert set(doc["paths"]) == {documented_path(route) for route in routes}


def test_it_describes_every_filter_the_endpoints_read(client, db):
    doc = document(client)

    assert parameters(doc, "/exceptions") >= {*QueueFilter.base_filters, "after", "limit"}
    assert parameters(doc, "/notifications") >= {
        *NotificationFilter.base_filters,
        *LOOKUP_PARAMS,
        "before",
        "limit",
    }


def test_it_says_every_read_needs_a_token_and_answers_401_without(client, db):
    doc = document(client)

    for path, operations in doc["paths"].items():
        if path in ("/openapi.json", "/events"):
            continue
        assert "401" in operations["get"]["responses"], path
        assert operations["get"].get("security", doc["security"]) == [{"apiToken": []}]
