"""The OpenAPI 3.1 description of every route, served at /openapi.json.

Built from the running settings so its limits (body size, message count,
max_tokens, models) are the ones the gateway enforces. tests/unit/test_openapi.py
keeps it in step with the Flask url map; tests/integration/test_contract.py
fuzzes a live gateway against it with schemathesis.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify

from spool.events import EventType, StreamStatus
from spool.settings import Settings

STREAM_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$"}
_STATUSES = [s.value for s in StreamStatus]
_EVENT_TYPES = [t.value for t in EventType]
_NULLABLE_NUMBER = {"type": ["number", "null"]}

_ERRORS = {
    400: "Malformed JSON, cursor or format",
    401: "Missing or invalid API key or read token",
    404: "Unknown, malformed, expired or someone else's stream",
    413: "Body over the size limit",
    415: "Body is not application/json",
    422: "Body does not match the schema, the model allowlist or the input limit",
    429: "Rate or concurrent-stream limit reached (see Retry-After)",
    503: "Queue full or stream store unavailable (see Retry-After)",
}


def _error(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _ERRORS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}}
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _error(s) for s in statuses}


def _stream_content() -> dict[str, Any]:
    # NDJSON: one Event per line, declared as text (it is not one JSON value).
    # SSE: in OpenAPI 3.1 `schema` describes each event frame; its `data` is an Event.
    sse_frame = {"type": "object", "required": ["data"], "properties": {
        "event": {"enum": _EVENT_TYPES}, "id": {"type": "string", "pattern": "^[0-9]+$"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/Event"}}}}
    return {"application/x-ndjson": {"schema": {"type": "string", "description": "Event objects, one a line"}},
            "text/event-stream": {"schema": sse_frame}}


_STREAM_HEADERS = {"X-Stream-Id": {"schema": STREAM_ID, "required": True}}
_PATH_ID = {"name": "stream_id", "in": "path", "required": True, "schema": STREAM_ID}
# From a created stream to the routes that take its id (contract tools follow them).
_LINKS = {name: {"operationId": op, "parameters": {"stream_id": "$response.body#/id"}}
          for name, op in [("snapshot", "getStream"), ("events", "streamEvents"), ("cancel", "cancelStream")]}
_V1_SECURITY = [{"bearer": []}]
_READ_SECURITY = [{"bearer": []}, {"readToken": []}]


def _schemas(settings: Settings) -> dict[str, Any]:
    models = [m.strip() for m in settings.models.split(",") if m.strip()]
    model: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 200}
    if models:
        model = {"type": "string", "enum": sorted({*models, settings.default_model})}
    return {
        "ErrorDetail": {"type": "object", "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                       "param": {"type": ["string", "null"]}}},
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}}},
        "ChatRequest": {
            # The body of /v1/chat/completions less stream/stream_options
            # (docs/protocol.md); parameters spool does not know are forwarded.
            "type": "object", "required": ["messages"], "additionalProperties": True,
            "properties": {
                "messages": {"type": "array", "minItems": 1, "maxItems": settings.max_messages, "items": {
                    "type": "object", "required": ["role"],
                    "properties": {"role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
                                   "content": {"type": ["string", "array", "null"]},
                                   "name": {"type": "string"}, "tool_call_id": {"type": "string"},
                                   "tool_calls": {"type": "array"}, "refusal": {"type": ["string", "null"]}}}},
                "model": model,
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "top_p": {"type": "number", "minimum": 0, "maximum": 1},
                "max_tokens": {"type": "integer", "minimum": 1, "maximum": settings.max_tokens_cap},
                "max_completion_tokens": {"type": "integer", "minimum": 1, "maximum": settings.max_tokens_cap},
                "n": {"const": 1},
                "tools": {"type": "array", "maxItems": 128, "items": {"type": "object", "required": ["type"]}},
                "tool_choice": {"type": ["string", "object"]},
                "response_format": {"type": "object", "required": ["type"],
                                    "properties": {"type": {"enum": ["text", "json_object", "json_schema"]}}},
            },
            "not": {"anyOf": [{"required": ["stream"]}, {"required": ["stream_options"]}]},
        },
        "Event": {"type": "object", "required": ["type"],
                  "properties": {"seq": {"type": "integer", "minimum": 1},
                                 "type": {"enum": [*_EVENT_TYPES, "heartbeat"]}}},
        "Queued": {"type": "object", "required": ["id", "status", "url", "events_url", "cancel_url", "read_token"],
                   "properties": {"id": STREAM_ID, "status": {"const": "queued"}, "url": {"type": "string"},
                                  "events_url": {"type": "string"}, "cancel_url": {"type": "string"},
                                  "read_token": {"type": "string"}}},
        "Snapshot": {
            "type": "object",
            "required": ["id", "status", "model", "text", "last_seq", "finish_reason", "usage", "error",
                         "created_at", "started_at", "ended_at"],
            "properties": {
                "id": STREAM_ID, "status": {"enum": _STATUSES}, "model": {"type": ["string", "null"]},
                "text": {"type": "string"}, "last_seq": {"type": "integer", "minimum": 0},
                "finish_reason": {"type": ["string", "null"]}, "usage": {"type": ["object", "null"]},
                "error": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/ErrorDetail"}]},
                "created_at": _NULLABLE_NUMBER, "started_at": _NULLABLE_NUMBER, "ended_at": _NULLABLE_NUMBER,
                "cancel_requested": {"type": "boolean"},
                # The assistant message assembled from the events (docs/protocol.md).
                "message": {"type": "object", "required": ["role", "content", "refusal"], "properties": {
                    "role": {"const": "assistant"}, "content": {"type": ["string", "null"]},
                    "refusal": {"type": ["string", "null"]}, "reasoning": {"type": "string"},
                    "tool_calls": {"type": "array", "items": {"type": "object"}}}},
                "logprobs": {"type": ["object", "null"]}, "upstream_model": {"type": ["string", "null"]},
                "system_fingerprint": {"type": ["string", "null"]}, "service_tier": {"type": ["string", "null"]},
            },
        },
        "CancelResult": {"type": "object", "required": ["id", "status"],
                         "properties": {"id": STREAM_ID, "status": {"enum": _STATUSES},
                                        "cancel_requested": {"type": "boolean"}}},
    }


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_OPENAI_SCHEMAS = {
    "ChatCompletionRequest": {
        "type": "object", "required": ["messages"],
        "properties": {"messages": {"type": "array", "items": {"type": "object"}}, "model": {"type": "string"},
                       "stream": {"type": "boolean"}, "stream_options": {"type": "object"},
                       "temperature": {"type": "number"}, "max_tokens": {"type": "integer"},
                       "max_completion_tokens": {"type": "integer"}, "n": {"type": "integer"},
                       "user": {"type": "string"}},
    },
    "ModelList": {
        "type": "object", "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {
            "type": "object", "required": ["id", "object"],
            "properties": {"id": {"type": "string"}, "object": {"const": "model"}}}}},
    },
    "OpenAIError": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["message", "type"],
                                 "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                                                "param": {"type": ["string", "null"]},
                                                "code": {"type": ["string", "null"]}}}},
    },
}


_CHAT_ID = {"name": "chat_id", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}}
_UI_STREAM = {"description": "A UI message stream (AI SDK, v1): chunks as SSE `data`, then `[DONE]`",
              "headers": {**_STREAM_HEADERS, "x-vercel-ai-ui-message-stream": {"schema": {"const": "v1"}}},
              "content": {"text/event-stream": {"schema": {"type": "string"}}}}
# The AI SDK routes (gateway/ui_routes.py, docs/protocol.md "AI SDK").
_UI_PATHS = {
    "/v1/ui/chat": {"post": {
        "operationId": "uiChat", "security": _V1_SECURITY,
        "description": "DefaultChatTransport's body: {id, messages: UIMessage[], trigger, messageId, ...} "
                       "plus the chat completions fields.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["id", "messages"],
            "properties": {"id": _CHAT_ID["schema"], "messages": {"type": "array", "items": {"type": "object"}},
                           "trigger": {"type": "string"}, "messageId": {"type": ["string", "null"]}}}}}},
        "responses": {"200": _UI_STREAM, **_errors(400, 401, 404, 413, 415, 422, 429, 503)}}},
    "/v1/ui/chat/{chat_id}/stream": {"get": {
        "operationId": "uiChatStream", "security": _V1_SECURITY,
        "parameters": [_CHAT_ID, {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                       {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string", "pattern": "^[0-9]*$"}}],
        "responses": {"200": _UI_STREAM, "204": {"description": "The chat has no answer to resume"},
                      **_errors(400, 401, 429, 503)}}},
    "/v1/ui/chat/{chat_id}/stop": {"post": {
        "operationId": "uiChatStop", "security": _V1_SECURITY, "parameters": [_CHAT_ID],
        "responses": {"200": _json("Ended (terminal status)", "CancelResult"),
                      "202": _json("Cancel requested, not yet confirmed", "CancelResult"),
                      **_errors(400, 401, 404, 429, 503)}}},
}


def build_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document for a gateway running with `settings`."""
    stream_headers = {**_STREAM_HEADERS, "X-Stream-Token": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "spool", "version": "1", "description": "See docs/protocol.md and docs/security.md."},
        "paths": {
            "/healthz": {"get": {"operationId": "healthz", "security": [], "responses": {"200": {
                "description": "The process is alive",
                "content": {"application/json": {"schema": {"type": "object", "required": ["status"],
                                                            "properties": {"status": {"const": "ok"}}}}}}}}},
            "/v1/streams": {"post": {
                "operationId": "createStream", "security": _V1_SECURITY,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}}},
                "responses": {
                    "200": {"description": "The live stream (Accept: NDJSON or SSE)", "headers": stream_headers,
                            "content": _stream_content()},
                    "202": {**_json("Queued", "Queued"), "headers": stream_headers, "links": _LINKS},
                    **_errors(400, 401, 413, 415, 422, 429, 503),
                }}},
            "/v1/streams/{stream_id}": {"get": {
                "operationId": "getStream", "security": _READ_SECURITY, "parameters": [_PATH_ID],
                "responses": {"200": _json("The stream's snapshot", "Snapshot"), **_errors(401, 404, 429, 503)}}},
            "/v1/streams/{stream_id}/events": {"get": {
                "operationId": "streamEvents", "security": _READ_SECURITY,
                "parameters": [
                    _PATH_ID,
                    # `format=openai` (chat.completion.chunk frames) is left to docs/protocol.md:
                    # its frames follow OpenAI's schema, not Event.
                    {"name": "format", "in": "query", "schema": {"enum": ["ndjson", "sse"]}},
                    {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string", "pattern": "^[0-9]*$"}},
                ],
                "responses": {"200": {"description": "Replay, then live events", "headers": _STREAM_HEADERS,
                                      "content": _stream_content()},
                              **_errors(400, 401, 404, 429, 503)}}},
            "/v1/streams/{stream_id}/cancel": {"post": {
                "operationId": "cancelStream", "security": _V1_SECURITY, "parameters": [_PATH_ID],
                "responses": {"200": _json("Ended (terminal status)", "CancelResult"),
                              "202": _json("Cancel requested, not yet confirmed", "CancelResult"),
                              **_errors(401, 404, 429, 503)}}},
            "/v1/models": {"get": {
                "operationId": "listModels", "security": _V1_SECURITY,
                "responses": {"200": _json("The models clients may ask for", "ModelList"), **_errors(401, 429, 503)}}},
            "/v1/chat/completions": {"post": {
                "operationId": "createChatCompletion", "security": _V1_SECURITY,
                "description": "OpenAI's chat completions (docs/protocol.md); errors in OpenAI's shape.",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}}},
                "responses": {
                    "200": {"description": "A chat.completion, or (stream: true) chat.completion.chunk events",
                            "headers": _STREAM_HEADERS,
                            "content": {"application/json": {"schema": {"type": "object"}},
                                        "text/event-stream": {"schema": {"type": "string"}}}},
                    **{str(status): {"description": "An OpenAI-shaped error",
                                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}}
                       for status in (400, 401, 404, 409, 413, 415, 429, 500, 502, 503, 504)},
                }}},
            **_UI_PATHS,
        },
        "components": {
            "schemas": {**_schemas(settings), **_OPENAI_SCHEMAS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (SPOOL_API_KEYS)"},
                "readToken": {"type": "apiKey", "in": "query", "name": "token",
                              "description": "A stream's read token (X-Stream-Token / read_token at creation)"},
            },
        },
    }


def register_openapi(app: Flask, settings: Settings) -> None:
    """Serve the document at /openapi.json (public: it holds no secrets)."""
    document = build_document(settings)

    @app.get("/openapi.json")
    def openapi_json():
        return jsonify(document)
