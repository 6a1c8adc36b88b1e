"""The AI SDK routes against a real stack: at the SSE level, and with the
`ai` npm package's DefaultChatTransport (tests/ai-sdk-node)."""

from __future__ import annotations

import json

import pytest
import requests

from mock_upstream import expected_text
from spool.events import Event
from spool.ui_wire import UiMessageEncoder
from tests.node_suite import run_node_suite
from tests.stack import ROOT, start_stack, wait_until
from tests.unit.test_ui_wire import chunks_of, parse_sse

NODE_DIR = ROOT / "tests" / "ai-sdk-node"
PROMPTS = ["ui send", "ui resume", "ui after", "ui stop", "ui reset"]
TOKENS = 40

# The event model of whole messages (docs/protocol.md), fed straight to the
# encoder: the node test reads the frames with the real `ai` package.
TOOL_EVENTS = [
    ("start", {"id": "stream-id", "model": "m", "created": 1}),
    ("reasoning", {"text": "Thinking "}), ("reasoning", {"text": "it over."}),
    ("delta", {"text": "Let me look that up."}),
    ("tool_call", {"index": 0, "id": "call_1", "tool_type": "function", "name": "get_weather"}),
    ("tool_call_delta", {"index": 0, "arguments": '{"city": "Par'}),
    ("tool_call", {"index": 1, "id": "call_2", "tool_type": "function", "name": "get_time"}),
    ("tool_call_delta", {"index": 0, "arguments": 'is", "days": [1, 2]}'}),
    ("tool_call_delta", {"index": 1, "arguments": "{broken"}),
    ("done", {"finish_reason": "tool_calls", "usage": None}),
]
CANCELLED_EVENTS = [("start", {"id": "stream-id", "model": "m", "created": 1}), ("delta", {"text": "a"}),
                    ("cancelled", {})]


def encoded(events: list[tuple[str, dict]]) -> str:
    encoder = UiMessageEncoder("stream-id")
    frames = [encoder.encode(Event(seq, t.encode(), json.dumps(d).encode()))
              for seq, (t, d) in enumerate(events, 1)]
    return b"".join(frames).decode()


@pytest.fixture(scope="module")
def ui_stack(redis_url, tmp_path_factory):
    # 40 tokens at 40/s: a second per answer, so a reconnect usually finds it live.
    stack = start_stack(redis_url, mock_args=["--ttft-ms", "20", "--tokens-per-second", "40", "--tokens", str(TOKENS)],
                        log_dir=tmp_path_factory.mktemp("ui-stack"))
    yield stack
    stack.stop()


def test_text_answer_chunk_sequence(ui_stack):
    prompt = "ui sse"
    body = {"id": "py-sse", "trigger": "submit-message", "messageId": None, "model": "mock",
            "messages": [{"id": "u", "role": "user", "parts": [{"type": "text", "text": prompt}]}]}
    with requests.post(f"{ui_stack.base_url}/v1/ui/chat", json=body, stream=True, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.raw.read()
    stream_id = response.headers["X-Stream-Id"]
    chunks = chunks_of(raw)
    types = [c["type"] for c in chunks]
    n = types.count("text-delta")
    assert types == ["start", "start-step", "text-start", *["text-delta"] * n, "text-end", "finish-step", "finish"]
    assert chunks[0]["messageId"] == stream_id and chunks[-1]["finishReason"] == "stop"
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == expected_text(prompt, TOKENS)
    seqs = [seq for seq, _ in parse_sse(raw) if seq is not None]
    assert seqs == sorted(seqs) and seqs[0] == 1
    # The resume is the same answer, frame for frame (comments aside).
    again = requests.get(f"{ui_stack.base_url}/v1/ui/chat/py-sse/stream", timeout=30).content
    assert parse_sse(again) == parse_sse(raw)


def test_ai_sdk_transport(ui_stack):
    stack = ui_stack
    run_node_suite(NODE_DIR, "transport.test.mjs", "ai", {
        "SPOOL_BASE_URL": stack.base_url,
        "SPOOL_EXPECTED": json.dumps({p: expected_text(p, TOKENS) for p in PROMPTS}),
        "SPOOL_ENCODED": json.dumps({"tools": encoded(TOOL_EVENTS), "cancelled": encoded(CANCELLED_EVENTS)}),
    }, passes=8)
    # Stop reached the upstream: the stalled request was aborted, not left hanging.
    def stalled() -> list[dict]:
        return [r for r in stack.mock_stats() if r["prompt"] == "ui stop"]

    # The mock sees the closed connection a moment after the stream ended.
    wait_until(lambda: stalled()[0]["aborted"], 10, "the mock to see the stalled call aborted")
    assert len(stalled()) == 1 and not stalled()[0]["finished"]
