"""The OpenAPI document (gateway/openapi.py) stays in step with the routes."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator

DOCUMENTED_PREFIXES = ("/v1/", "/healthz")


@pytest.fixture
def app(make_app):
    return make_app(models="a,b")


def routes(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(DOCUMENTED_PREFIXES):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            found |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def test_every_route_is_documented_and_nothing_else(app):
    document = app.test_client().get("/openapi.json").get_json()
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == routes(app)
    assert document["openapi"].startswith("3.1")


def test_schemas_are_valid_json_schema_and_refs_resolve(app):
    document = app.test_client().get("/openapi.json").get_json()
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    text = str(document)
    for ref in re.findall(r"#/components/schemas/(\w+)", text):
        assert ref in document["components"]["schemas"]


def test_document_follows_settings(app):
    schema = app.test_client().get("/openapi.json").get_json()["components"]["schemas"]["ChatRequest"]
    assert set(schema["properties"]["model"]["enum"]) == {"a", "b", app.extensions["spool"].settings.default_model}


def test_a_real_snapshot_and_error_match_the_document(app):
    client = app.test_client()
    document = client.get("/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    body = client.post("/v1/streams", json={"messages": [{"role": "user", "content": "hi"}], "model": "a"})
    queued = body.get_json()

    def validate(instance, name):
        Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}}).validate(
            instance)

    validate(queued, "Queued")
    validate(client.get(queued["url"]).get_json(), "Snapshot")
    validate(client.get("/v1/streams/" + "B" * 22).get_json(), "Error")
