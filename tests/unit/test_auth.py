"""API keys, stream ownership and read tokens (gateway/auth.py), on fakeredis."""

from __future__ import annotations

import logging

import fakeredis
import pytest

from gateway.auth import Access, load_api_keys
from spool.errors import ConfigError
from spool.settings import Settings

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
ALICE, BOB = "alice-key-0123456789-abcdefghijklmnop", "bob-key-9876543210-abcdefghijklmnopq"
SECRET = "s3cret-0123456789-abcdefghijklmnopq"
FILE_KEY = "file-key-0123456789-abcdefghijklmnop"


@pytest.fixture
def client(make_app):
    return make_app(api_keys=f"{ALICE},{BOB}", secret_key=SECRET).test_client()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(client, key: str = ALICE):
    response = client.post("/v1/streams", json=CHAT, headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def test_routes_need_a_key_when_keys_are_configured(client):
    sid = "A" * 22
    for method, path in [("post", "/v1/streams"), ("get", f"/v1/streams/{sid}"),
                         ("get", f"/v1/streams/{sid}/events"), ("post", f"/v1/streams/{sid}/cancel"),
                         ("get", "/v1/not-a-route-yet")]:
        response = getattr(client, method)(path, json=CHAT)
        assert response.status_code == 401, path
        assert response.get_json()["error"]["code"] == "unauthorized"
    wrong = client.post("/v1/streams", json=CHAT, headers=bearer("nope"))
    assert wrong.status_code == 401
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_a_valid_key_creates_and_reads_its_own_stream(client):
    body = create(client)
    assert client.get(body["url"], headers=bearer(ALICE)).status_code == 200


def test_another_key_cannot_read_snapshot_events_or_cancel(client):
    body = create(client, ALICE)
    for method, url in [("get", body["url"]), ("get", body["events_url"]), ("post", body["cancel_url"])]:
        response = getattr(client, method)(url, headers=bearer(BOB))
        assert response.status_code == 404, url
        assert response.get_json()["error"]["code"] == "not_found"
    # Nothing changed: the stream is still queued for its owner.
    assert client.get(body["url"], headers=bearer(ALICE)).get_json()["status"] == "queued"


def test_the_owner_hash_is_stored_not_the_key(make_app):
    app = make_app(api_keys=ALICE, secret_key=SECRET)
    body = create(app.test_client())
    meta = app.extensions["spool"].store.meta(body["id"])
    assert meta.owner and ALICE not in str(meta)


def test_read_token_opens_events_and_snapshot_only(client):
    body = create(client)
    token = body["read_token"]
    assert client.get(f"{body['url']}?token={token}").status_code == 200
    events = client.get(f"{body['events_url']}?token={token}&format=ndjson", buffered=False)
    assert events.status_code == 200
    events.close()
    assert client.post(f"{body['cancel_url']}?token={token}").status_code == 401


def test_a_token_for_another_stream_or_forged_or_expired_is_refused(client, make_app):
    one, two = create(client), create(client)
    assert client.get(f"{one['url']}?token={two['read_token']}").status_code == 401
    expires, _, sig = one["read_token"].partition(".")
    forged = f"{int(expires) + 1000}.{sig}"
    assert client.get(f"{one['url']}?token={forged}").status_code == 401
    assert client.get(f"{one['url']}?token=garbage").status_code == 401
    access = client.application.extensions["spool.access"]
    old = access.read_token(one["id"], now=0)
    assert access.token_grants(old, one["id"]) is False
    assert client.get(f"{one['url']}?token={old}").status_code == 401
    # Signed with another secret: refused.
    other = make_app(api_keys=ALICE, secret_key="other-" + SECRET).extensions["spool.access"]
    assert client.get(f"{one['url']}?token={other.read_token(one['id'])}").status_code == 401


def test_stream_responses_carry_the_token_header(client):
    response = client.post("/v1/streams", json=CHAT, headers={**bearer(ALICE), "Accept": "application/x-ndjson"},
                           buffered=False)
    token = response.headers["X-Stream-Token"]
    sid = response.headers["X-Stream-Id"]
    response.close()
    assert client.application.extensions["spool.access"].token_grants(token, sid)


def test_malformed_ids_answer_404_before_touching_redis(make_app, monkeypatch):
    app = make_app(api_keys=ALICE, secret_key=SECRET)
    seen = []
    redis_client = app.extensions["spool"].redis
    monkeypatch.setattr(redis_client, "execute_command", lambda *a, **k: seen.append(a) or None)
    for bad in ["short", "x" * 23, "a" * 21 + "*", "a" * 21 + "}"]:
        response = app.test_client().get(f"/v1/streams/{bad}", headers=bearer(ALICE))
        assert response.status_code == 404, bad
    assert seen == []


def test_open_gateway_warns_and_serves_anyone(make_app, caplog):
    with caplog.at_level(logging.WARNING, logger="gateway.auth"):
        client = make_app().test_client()
    assert any("OPEN MODE" in r.getMessage() for r in caplog.records)
    assert any("SPOOL_SECRET_KEY" in r.getMessage() for r in caplog.records)
    body = client.post("/v1/streams", json=CHAT).get_json()
    assert client.get(body["url"]).status_code == 200


def test_generated_secret_is_shared_through_redis(prefix):
    client = fakeredis.FakeRedis()
    settings = Settings.from_env({}, key_prefix=prefix, allow_open=True)
    first, second = Access.build(settings, client), Access.build(settings, client)
    assert second.token_grants(first.read_token("A" * 22), "A" * 22)


def test_keys_file_and_list_are_merged(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# comment\n{FILE_KEY}\n\n")
    keys = load_api_keys(Settings.from_env({}, api_keys=f" {ALICE} , {BOB},", api_keys_file=str(path)))
    assert keys == [ALICE, BOB, FILE_KEY]
    with pytest.raises(ConfigError):
        load_api_keys(Settings.from_env({}, api_keys_file=str(tmp_path / "missing")))


def test_a_key_from_the_file_works(make_app, tmp_path):
    path = tmp_path / "keys"
    path.write_text(FILE_KEY + "\n")
    client = make_app(api_keys_file=str(path), secret_key=SECRET).test_client()
    assert client.post("/v1/streams", json=CHAT, headers=bearer(FILE_KEY)).status_code == 202
    assert client.post("/v1/streams", json=CHAT, headers=bearer("other")).status_code == 401


def test_openai_route_streams_belong_to_their_key_and_count_against_its_limit(make_app):
    client = make_app(api_keys=f"{ALICE},{BOB}", secret_key=SECRET, max_concurrent_streams=1).test_client()
    body = {**CHAT, "stream": True}
    response = client.post("/v1/chat/completions", json=body, headers=bearer(ALICE), buffered=False)
    assert response.status_code == 200
    sid = response.headers["X-Stream-Id"]
    response.close()
    # Its creator may follow and snapshot it; another key may not see it.
    assert client.get(f"/v1/streams/{sid}", headers=bearer(ALICE)).status_code == 200
    assert client.get(f"/v1/streams/{sid}", headers=bearer(BOB)).status_code == 404
    # The live stream holds Alice's one slot, whichever API created it.
    refused = client.post("/v1/streams", json=CHAT, headers=bearer(ALICE))
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "too_many_streams"



def test_the_caller_is_decided_once_per_request(make_app):
    from gateway.auth import Caller, current_caller, owner_of

    app = make_app(api_keys=ALICE, secret_key=SECRET)
    seen: list[Caller] = []
    app.after_request(lambda response: seen.append(current_caller()) or response)
    client = app.test_client()
    created = create(client)
    owner = owner_of(ALICE, SECRET)
    assert seen[-1] == Caller(owner=owner, owners=(owner,), grant=None, subject=owner)
    sid, token = created["id"], created["read_token"]
    assert client.get(f"/v1/streams/{sid}?token={token}").status_code == 200
    assert seen[-1] == Caller(grant=sid, subject=f"stream:{sid}")
    assert client.get("/healthz").status_code == 200
    assert seen[-1] == Caller(subject="ip:127.0.0.1")
