"""The UI message stream (spool/ui_wire.py) chunk by chunk, and the AI SDK
routes (gateway/ui_routes.py) on fakeredis.

The event model of whole messages (reasoning, tool calls) is fed to the
encoder as the follow loop feeds it (`observe` up to the resume point,
`encode` after it), and through the real loop (spool/tail.py `follow`) over
a store; text also goes through the routes.
"""

from __future__ import annotations

import json

import pytest

from gateway.openai_request import parse_completion_request
from gateway.ui_messages import to_chat_messages
from spool.events import EventType
from spool.keys import new_stream_id
from spool.settings import Settings
from spool.events import Event
from spool.streams import FAILOVER_SEQ_MARGIN
from spool.tail import follow
from spool.ui_wire import DONE_FRAME, UI_PREAMBLE, UiMessageEncoder
from spool.wire import Encoder

# The keys each chunk may hold (the `ai` package's schemas are strict in v5:
# an unknown key fails the whole stream).
ALLOWED_KEYS = {
    "start": {"type", "messageId"},
    "start-step": {"type"},
    "text-start": {"type", "id"},
    "text-delta": {"type", "id", "delta"},
    "text-end": {"type", "id"},
    "reasoning-start": {"type", "id"},
    "reasoning-delta": {"type", "id", "delta"},
    "reasoning-end": {"type", "id"},
    "tool-input-start": {"type", "toolCallId", "toolName"},
    "tool-input-delta": {"type", "toolCallId", "inputTextDelta"},
    "tool-input-available": {"type", "toolCallId", "toolName", "input"},
    "tool-input-error": {"type", "toolCallId", "toolName", "input", "errorText"},
    "finish-step": {"type"},
    "finish": {"type", "finishReason"},
    "error": {"type", "errorText"},
    "abort": {"type"},
}
FINISH_REASONS = {"stop", "length", "content-filter", "tool-calls", "error", "other"}


def parse_sse(body: bytes) -> list[tuple[int | None, object]]:
    """(id, chunk) per frame; comments skipped; `[DONE]` as the string."""
    frames = []
    for block in body.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        assert set(fields) <= {"id", "data"}, block
        data = fields["data"]
        frames.append((int(fields["id"]) if "id" in fields else None, data if data == "[DONE]" else json.loads(data)))
    return frames


def chunks_of(body: bytes) -> list:
    """The chunks, each checked against the strict key sets; ends with [DONE]."""
    frames = parse_sse(body)
    assert frames and frames[-1][1] == "[DONE]" and all(f[1] != "[DONE]" for f in frames[:-1])
    chunks = [chunk for _, chunk in frames[:-1]]
    for chunk in chunks:
        assert set(chunk) <= ALLOWED_KEYS[chunk["type"]], chunk
        assert {"type"} | ({"id"} if chunk["type"].startswith(("text", "reasoning")) else set()) <= set(chunk)
        if chunk["type"] == "finish":
            assert chunk["finishReason"] in FINISH_REASONS
    return chunks


def stored(seq: int, type_: str, data: dict) -> Event:
    return Event(seq, type_.encode(), json.dumps(data, separators=(",", ":")).encode())


def encode(events: list[tuple[str, dict]], *, after: int = 0, **kwargs) -> bytes:
    """The response body as the follow loop makes it: the events up to `after`
    observed, the rest encoded until the encoder is finished."""
    encoder = UiMessageEncoder("sid", **kwargs)
    out = b""
    for seq, (type_, data) in enumerate(events, start=1):
        event = stored(seq, type_, data)
        if seq <= after:
            encoder.observe(event)
            continue
        out += encoder.encode(event)
        if encoder.finished:
            break
    assert encoder.finished
    return out


START = ("start", {"id": "sid", "model": "m", "created": 1})
DONE = ("done", {"finish_reason": "stop", "usage": None})


def test_text_answer():
    body = encode([START, ("delta", {"text": "Hel"}), ("delta", {"text": 'lo "x"\n'}), DONE])
    assert chunks_of(body) == [
        {"type": "start", "messageId": "sid"},
        {"type": "start-step"},
        {"type": "text-start", "id": "text-2"},
        {"type": "text-delta", "id": "text-2", "delta": "Hel"},
        {"type": "text-delta", "id": "text-2", "delta": 'lo "x"\n'},
        {"type": "text-end", "id": "text-2"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
    ]
    # spool's seq is every frame's SSE id: the event the chunk came from.
    assert [i for i, _ in parse_sse(body)] == [1, 1, 2, 2, 3, 4, 4, 4, None]


def test_reasoning_then_text_then_refusal():
    body = encode([START, ("reasoning", {"text": "think"}), ("reasoning", {"text": "ing"}),
                   ("delta", {"text": "Hi"}), ("refusal", {"text": "no"}),
                   ("done", {"finish_reason": "content_filter", "usage": None, "model": "m-1"})])
    types = [(c["type"], c.get("id"), c.get("delta")) for c in chunks_of(body)]
    assert types == [
        ("start", None, None), ("start-step", None, None),
        ("reasoning-start", "reasoning-2", None), ("reasoning-delta", "reasoning-2", "think"),
        ("reasoning-delta", "reasoning-2", "ing"), ("reasoning-end", "reasoning-2", None),
        ("text-start", "text-4", None), ("text-delta", "text-4", "Hi"),
        ("text-delta", "text-4", "no"),  # refusal text is text to the reader
        ("text-end", "text-4", None), ("finish-step", None, None), ("finish", None, None),
    ]
    assert chunks_of(body)[-1]["finishReason"] == "content-filter"


def test_tool_calls():
    body = encode([
        START, ("delta", {"text": "Let me look."}),
        ("tool_call", {"index": 0, "id": "call_1", "tool_type": "function", "name": "weather"}),
        ("tool_call_delta", {"index": 0, "arguments": '{"city":'}),
        ("tool_call", {"index": 1, "id": "call_2", "tool_type": "function", "name": "time"}),
        ("tool_call_delta", {"index": 0, "arguments": '"Paris"}'}),
        ("tool_call_delta", {"index": 1, "arguments": "{not json"}),
        ("done", {"finish_reason": "tool_calls", "usage": {"prompt_tokens": 1}}),
    ])
    assert chunks_of(body)[2:] == [
        {"type": "text-start", "id": "text-2"},
        {"type": "text-delta", "id": "text-2", "delta": "Let me look."},
        {"type": "text-end", "id": "text-2"},
        {"type": "tool-input-start", "toolCallId": "call_1", "toolName": "weather"},
        {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": '{"city":'},
        {"type": "tool-input-start", "toolCallId": "call_2", "toolName": "time"},
        {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": '"Paris"}'},
        {"type": "tool-input-delta", "toolCallId": "call_2", "inputTextDelta": "{not json"},
        {"type": "tool-input-available", "toolCallId": "call_1", "toolName": "weather", "input": {"city": "Paris"}},
        {"type": "tool-input-error", "toolCallId": "call_2", "toolName": "time", "input": "{not json",
         "errorText": "the tool call's arguments are not valid JSON"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "tool-calls"},
    ]


def test_a_custom_tool_input_is_text():
    chunks = chunks_of(encode([START, ("tool_call", {"index": 0, "id": "c", "tool_type": "custom", "name": "sql"}),
                               ("tool_call_delta", {"index": 0, "arguments": "SELECT 1"}), DONE]))
    assert {"type": "tool-input-available", "toolCallId": "c", "toolName": "sql", "input": "SELECT 1"} in chunks


def test_error_and_cancel_close_open_parts():
    error = chunks_of(encode([START, ("reasoning", {"text": "a"}),
                              ("error", {"code": "upstream_rejected", "message": "bad tool", "status": 400})]))
    assert error[2:] == [{"type": "reasoning-start", "id": "reasoning-2"},
                         {"type": "reasoning-delta", "id": "reasoning-2", "delta": "a"},
                         {"type": "reasoning-end", "id": "reasoning-2"},
                         {"type": "error", "errorText": "upstream_rejected: bad tool"}]
    cancelled = chunks_of(encode([START, ("delta", {"text": "a"}), ("cancelled", {})]))
    assert [c["type"] for c in cancelled] == ["start", "start-step", "text-start", "text-delta", "text-end", "abort"]
    # Cancelled while queued: there was no start event, the message still gets one.
    assert chunks_of(encode([("cancelled", {})])) == [{"type": "start", "messageId": "sid"}, {"type": "abort"}]


def test_reset_before_anything_visible_passes_unseen():
    chunks = chunks_of(encode([START, ("reset", {"attempt": 2, "reason": "worker_lost"}),
                               ("delta", {"text": "whole"}), DONE]))
    assert [c.get("delta") for c in chunks if c["type"] == "text-delta"] == ["whole"]


RESET_AFTER_TEXT = [START, ("delta", {"text": "half"}), ("tool_call", {"index": 0, "id": "c", "tool_type": "function",
                                                                      "name": "f"}),
                    ("reset", {"attempt": 2, "reason": "worker_lost"}),
                    ("delta", {"text": "whole"}), ("tool_call", {"index": 0, "id": "d", "tool_type": "function",
                                                                 "name": "g"}),
                    ("tool_call_delta", {"index": 0, "arguments": "{}"}), DONE]


def test_reset_after_text_ends_the_live_response():
    chunks = chunks_of(encode(RESET_AFTER_TEXT))
    assert [c["type"] for c in chunks][-2:] == ["tool-input-start", "error"]
    assert "worker_lost" in chunks[-1]["errorText"]
    assert "whole" not in json.dumps(chunks)


def test_replay_skips_everything_before_the_last_reset():
    chunks = chunks_of(encode(RESET_AFTER_TEXT, skip_to_attempt=2))
    assert chunks == [
        {"type": "start", "messageId": "sid"}, {"type": "start-step"},
        {"type": "text-start", "id": "text-5"}, {"type": "text-delta", "id": "text-5", "delta": "whole"},
        {"type": "text-end", "id": "text-5"},
        {"type": "tool-input-start", "toolCallId": "d", "toolName": "g"},
        {"type": "tool-input-delta", "toolCallId": "d", "inputTextDelta": "{}"},
        {"type": "tool-input-available", "toolCallId": "d", "toolName": "g", "input": {}},
        {"type": "finish-step"}, {"type": "finish", "finishReason": "stop"},
    ]


@pytest.mark.parametrize("after", range(0, 4))
def test_after_gives_exactly_the_rest(after):
    events = [START, ("delta", {"text": "a"}), ("reasoning", {"text": "b"}), DONE]
    whole = parse_sse(encode(events))
    assert parse_sse(encode(events, after=after)) == [f for f in whole if f[0] is None or f[0] > after]


def test_the_tool_calls_before_the_resume_point_are_remembered():
    # The arguments streamed before `after` still make the call's input.
    events = [START, ("tool_call", {"index": 0, "id": "c", "tool_type": "function", "name": "f"}),
              ("tool_call_delta", {"index": 0, "arguments": '{"a":'}),
              ("tool_call_delta", {"index": 0, "arguments": " 1}"}), ("done", {"finish_reason": "tool_calls"})]
    assert chunks_of(encode(events, after=3)) == [
        {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": " 1}"},
        {"type": "tool-input-available", "toolCallId": "c", "toolName": "f", "input": {"a": 1}},
        {"type": "finish-step"}, {"type": "finish", "finishReason": "tool-calls"},
    ]


def test_a_resume_past_a_reset_after_text_gets_only_done():
    assert encode(RESET_AFTER_TEXT, after=4) == DONE_FRAME


def test_an_interrupted_response_ends_with_an_error():
    encoder = UiMessageEncoder("sid")
    encoder.encode(stored(1, "start", {}))
    encoder.encode(stored(2, "delta", {"text": "a"}))
    chunks = chunks_of(encoder.interrupted())
    assert chunks == [{"type": "text-end", "id": "text-2"},
                      {"type": "error", "errorText": "the stream was interrupted; reconnect to resume"}]
    assert encoder.interrupted() == b""


def test_text_with_unexpected_keys_is_decoded():
    encoder = UiMessageEncoder("sid")
    encoder.encode(stored(1, "start", {}))
    frames = encoder.encode(Event(2, b"delta", b'{"text":"a","x":"b"}'))
    assert parse_sse(frames)[-1][1] == {"type": "text-delta", "id": "text-2", "delta": "a"}


def test_it_is_an_encoder_of_the_one_loop():
    encoder = UiMessageEncoder("sid")
    assert isinstance(encoder, Encoder) and encoder.wants_history and encoder.name == "ui"
    assert encoder.preamble == UI_PREAMBLE and encoder.queued(3) == encoder.heartbeat
    assert UiMessageEncoder("sid", ended=True).preamble == UI_PREAMBLE + DONE_FRAME


FOLLOWED = [
    (EventType.REASONING, {"text": "hm "}), (EventType.DELTA, {"text": "Let me "}),
    (EventType.DELTA, {"text": "look."}),
    (EventType.TOOL_CALL, {"index": 0, "id": "call_1", "tool_type": "function", "name": "weather"}),
    (EventType.TOOL_CALL_DELTA, {"index": 0, "arguments": '{"city": '}),
    (EventType.TOOL_CALL, {"index": 1, "id": "call_2", "tool_type": "custom", "name": "sql"}),
    (EventType.TOOL_CALL_DELTA, {"index": 0, "arguments": '"Köln"}'}),
    (EventType.TOOL_CALL_DELTA, {"index": 1, "arguments": "SELECT 1"}),
    (EventType.DONE, {"finish_reason": "tool_calls", "usage": None}),
]


def test_followed_from_every_seq_the_frames_are_exactly_the_rest(store, hub):
    # Through the real follow loop (history observed, the rest from the store).
    sid = new_stream_id()
    store.create(sid, {"messages": [{"role": "user", "content": "hi"}], "model": "m"})
    store.leases.acquire(sid, 30, "w")  # seq 1: start
    store.append(sid, "w", 2, FOLLOWED)
    last = len(FOLLOWED) + 1

    def body(after: int) -> bytes:
        ended = after >= last
        out = b"".join(follow(store, hub, sid, after, UiMessageEncoder(sid, ended=ended), 5.0, ended=ended))
        assert out.startswith(UI_PREAMBLE) and out.endswith(DONE_FRAME)
        return out

    whole = parse_sse(body(0))
    chunks = chunks_of(body(0))
    assert {"type": "tool-input-available", "toolCallId": "call_1", "toolName": "weather",
            "input": {"city": "Köln"}} in chunks
    assert {"type": "tool-input-available", "toolCallId": "call_2", "toolName": "sql", "input": "SELECT 1"} in chunks
    for after in range(1, last + 1):
        assert parse_sse(body(after)) == [f for f in whole if f[0] is None or f[0] > after], after


# --- UI messages -> chat messages -------------------------------------------------

def test_text_messages():
    assert to_chat_messages([
        {"id": "1", "role": "system", "parts": [{"type": "text", "text": "be brief"}]},
        {"id": "2", "role": "user", "parts": [{"type": "text", "text": "hi"}]},
        {"id": "3", "role": "assistant", "parts": [{"type": "step-start"}, {"type": "reasoning", "text": "hm"},
                                                   {"type": "text", "text": "hello"}]},
    ]) == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
           {"role": "assistant", "content": "hello"}]


def test_files_and_tool_parts():
    messages = to_chat_messages([
        {"id": "1", "role": "user", "parts": [
            {"type": "text", "text": "what is this?"},
            {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AAA"},
            {"type": "file", "mediaType": "application/pdf", "filename": "a.pdf",
             "url": "data:application/pdf;base64,B"},
        ]},
        {"id": "2", "role": "assistant", "parts": [
            {"type": "step-start"},
            {"type": "tool-weather", "toolCallId": "c1", "state": "output-available", "input": {"city": "Oslo"},
             "output": {"temp": 3}},
            {"type": "dynamic-tool", "toolName": "clock", "toolCallId": "c2", "state": "output-error",
             "input": {}, "errorText": "no clock"},
            {"type": "tool-pending", "toolCallId": "c3", "state": "input-available", "input": {}},
            {"type": "step-start"},
            {"type": "text", "text": "It is 3 degrees."},
        ]},
    ])
    assert messages == [
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,B", "filename": "a.pdf"}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "c2", "type": "function", "function": {"name": "clock", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 3}'},
        {"role": "tool", "tool_call_id": "c2", "content": "no clock"},
        {"role": "assistant", "content": "It is 3 degrees."},
    ]


WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
SQL = {"type": "custom", "custom": {"name": "sql"}}
# A whole tool loop as useChat holds it after the tools ran: the user's
# question (with an image), the assistant's step with two calls and their
# outputs, its answer after them, and the next question.
TOOL_ROUND_TRIP = [
    {"id": "u1", "role": "user", "parts": [
        {"type": "text", "text": "Weather in Oslo? And count the rows."},
        {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,iVBORw0KGgo="},
        {"type": "file", "mediaType": "audio/wav", "url": "data:audio/wav;base64,UklGRg=="},
        {"type": "file", "mediaType": "text/plain", "filename": "a.txt", "url": "data:text/plain;base64,aGk="},
    ]},
    {"id": "a1", "role": "assistant", "parts": [
        {"type": "step-start"},
        {"type": "reasoning", "text": "two tools", "state": "done"},
        {"type": "tool-weather", "toolCallId": "call_1", "state": "output-available",
         "input": {"city": "Oslo"}, "output": {"celsius": 3}},
        {"type": "tool-sql", "toolCallId": "call_2", "state": "output-available",
         "input": "SELECT count(*) FROM t", "output": "42"},
        {"type": "step-start"},
        {"type": "text", "text": "3 °C, and 42 rows.", "state": "done"},
    ]},
    {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "Thanks"}]},
]
TOOL_ROUND_TRIP_CHAT = [
    {"role": "user", "content": [
        {"type": "text", "text": "Weather in Oslo? And count the rows."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:text/plain;base64,aGk=", "filename": "a.txt"}},
    ]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
        {"id": "call_2", "type": "custom", "custom": {"name": "sql", "input": "SELECT count(*) FROM t"}},
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"celsius": 3}'},
    {"role": "tool", "tool_call_id": "call_2", "content": "42"},
    {"role": "assistant", "content": "3 °C, and 42 rows."},
    {"role": "user", "content": "Thanks"},
]


def test_a_tool_round_trip_becomes_chat_messages_the_validator_accepts():
    messages = to_chat_messages(TOOL_ROUND_TRIP, [WEATHER, SQL])
    assert messages == TOOL_ROUND_TRIP_CHAT
    # Checked as the chat completions route checks them (gateway/messages.py),
    # unknown keys refused: nothing is forwarded that the validator would not take.
    parsed = parse_completion_request({"model": "mock", "tools": [WEATHER, SQL], "messages": messages},
                                      Settings(forward_unknown_params=0, models="*"))
    assert parsed.chat["messages"] == TOOL_ROUND_TRIP_CHAT


def test_without_the_custom_tool_offered_a_call_is_a_function_call():
    calls = to_chat_messages(TOOL_ROUND_TRIP)[1]["tool_calls"]
    assert calls[1] == {"id": "call_2", "type": "function",
                        "function": {"name": "sql", "arguments": "SELECT count(*) FROM t"}}


# --- the routes on fakeredis ------------------------------------------------------

@pytest.fixture
def app(make_app):
    return make_app(api_keys=f"{KEY_A},{KEY_B}", secret_key="s" * 32)


KEY_A, KEY_B = "a" * 32, "b" * 32


def auth(key: str = KEY_A) -> dict:
    return {"Authorization": f"Bearer {key}"}


def ui_body(chat_id: str = "chat1", **extra) -> dict:
    return {"id": chat_id, "trigger": "submit-message", "messageId": None, **extra,
            "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}


def finish(app, stream_id: str, *events: tuple[EventType, dict]) -> None:
    store = app.extensions["spool"].store
    store.leases.acquire(stream_id, 30, "w")  # seq 1: start
    store.append(stream_id, "w", 2, events)


@pytest.mark.parametrize("body, code", [
    ({"id": "../x", "messages": []}, "invalid_chat_id"),
    ({"id": "c" * 129, "messages": []}, "invalid_chat_id"),
    ({"messages": []}, "invalid_chat_id"),
    ({"id": "c", "messages": "hi"}, "invalid_request"),
    ({"id": "c", "messages": [{"role": "robot", "parts": []}]}, "invalid_request"),
    ({"id": "c", "messages": []}, "invalid_request"),
    (ui_body(temperature=9), "invalid_request"),
    (ui_body(n=2), "invalid_request"),  # unknown parameters are forwarded; n is checked
    ([1], "invalid_request"),
])
def test_bad_requests_are_json_4xx_and_change_nothing(app, body, code):
    client = app.test_client()
    response = client.post("/v1/ui/chat", json=body, headers=auth())
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code
    assert app.extensions["spool"].queue.count == 0


def test_send_resume_stop_and_ownership(app):
    client = app.test_client()
    assert client.post("/v1/ui/chat", json=ui_body()).status_code == 401
    response = client.post("/v1/ui/chat", json=ui_body(model="mock", temperature=0.5), headers=auth())
    assert response.status_code == 200
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.mimetype == "text/event-stream"
    stream_id = response.headers["X-Stream-Id"]
    response.close()  # a dropped connection: the answer goes on
    request = json.loads(app.extensions["spool"].store.meta(stream_id).request)
    assert request["messages"] == [{"role": "user", "content": "hi"}] and request["params"]["temperature"] == 0.5
    finish(app, stream_id, (EventType.DELTA, {"text": "Hello"}), (EventType.DONE, {"finish_reason": "stop"}))

    resumed = client.get("/v1/ui/chat/chat1/stream", headers=auth())
    assert resumed.status_code == 200 and resumed.headers["x-vercel-ai-ui-message-stream"] == "v1"
    chunks = chunks_of(resumed.data)
    assert chunks[0] == {"type": "start", "messageId": stream_id}
    assert [c["delta"] for c in chunks if c["type"] == "text-delta"] == ["Hello"]
    rest = client.get("/v1/ui/chat/chat1/stream", headers={**auth(), "Last-Event-ID": "2"})
    assert [c["type"] for c in chunks_of(rest.data)] == ["text-end", "finish-step", "finish"]
    assert client.get("/v1/ui/chat/chat1/stream?after=x", headers=auth()).status_code == 400

    # Another key: the chat is not theirs.
    assert client.get("/v1/ui/chat/chat1/stream", headers=auth(KEY_B)).status_code == 204
    assert client.post("/v1/ui/chat/chat1/stop", headers=auth(KEY_B)).status_code == 404
    assert client.get("/v1/ui/chat/other/stream", headers=auth()).status_code == 204
    assert client.get("/v1/ui/chat/bad!id/stream", headers=auth()).status_code == 400

    stopped = client.post("/v1/ui/chat/chat1/stop", headers=auth())
    assert stopped.status_code == 200 and stopped.get_json() == {"id": stream_id, "status": "done"}


def test_a_tool_round_trip_is_queued_as_chat_messages(app):
    client = app.test_client()
    body = {"id": "tools", "trigger": "submit-message", "messageId": None, "model": "mock",
            "tools": [WEATHER, SQL], "messages": TOOL_ROUND_TRIP}
    response = client.post("/v1/ui/chat", json=body, headers=auth())
    assert response.status_code == 200, response.data
    response.close()
    request = json.loads(app.extensions["spool"].store.meta(response.headers["X-Stream-Id"]).request)
    assert request["messages"] == TOOL_ROUND_TRIP_CHAT and request["params"]["tools"] == [WEATHER, SQL]


def test_resume_points_at_and_past_the_end(app):
    client = app.test_client()
    response = client.post("/v1/ui/chat", json=ui_body("ends"), headers=auth())
    stream_id = response.headers["X-Stream-Id"]
    response.close()
    finish(app, stream_id, (EventType.DELTA, {"text": "a"}))
    # Live: a cursor beyond the last event by more than a failover explains is refused.
    beyond = client.get("/v1/ui/chat/ends/stream", headers={**auth(), "Last-Event-ID": str(3 + FAILOVER_SEQ_MARGIN)})
    assert beyond.status_code == 400 and beyond.get_json()["error"]["code"] == "invalid_cursor"
    app.extensions["spool"].store.append(stream_id, "w", 3, [(EventType.DONE, {"finish_reason": "stop"})])
    for after in (3, 9):  # at the end, and past it: only [DONE], at once
        rest = client.get(f"/v1/ui/chat/ends/stream?after={after}", headers=auth())
        assert rest.status_code == 200 and rest.data == UI_PREAMBLE + DONE_FRAME


def test_stop_a_queued_answer(app):
    client = app.test_client()
    client.post("/v1/ui/chat", json=ui_body("c2"), headers=auth()).close()
    stopped = client.post("/v1/ui/chat/c2/stop", headers=auth())
    assert stopped.get_json()["status"] == "cancelled"
    chunks = chunks_of(client.get("/v1/ui/chat/c2/stream", headers=auth()).data)
    assert [c["type"] for c in chunks] == ["start", "abort"]
