"""Start-up rules of spool/security_config.py, and what the running gateway
makes of them: no open mode by accident, long keys and secrets, secret
rotation, literal CORS origins, the model allowlist, owner hashes under the
secret, ASCII-only token digits and `Cache-Control: no-store`."""

from __future__ import annotations

import hashlib

import fakeredis
import pytest

from gateway.auth import owner_of
from spool.errors import ConfigError
from spool.security_config import MIN_KEY_LENGTH, MIN_SECRET_LENGTH, check, literal_origins
from spool.settings import Settings

KEY = "k" * MIN_KEY_LENGTH
SECRET = "s" * MIN_SECRET_LENGTH
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def settings(**values) -> Settings:
    """Settings from an empty environment (not the test run's opt-ins)."""
    return Settings.from_env({}, **values)


def test_open_mode_needs_the_explicit_opt_in():
    with pytest.raises(ConfigError, match="SPOOL_ALLOW_OPEN=1"):
        check(settings())
    assert check(settings(allow_open=True)).keys == ()
    assert check(Settings.from_env({"SPOOL_ALLOW_OPEN": "1"})).keys == ()
    with pytest.raises(ConfigError, match="SPOOL_ALLOW_OPEN"):
        Settings.from_env({"SPOOL_ALLOW_OPEN": "maybe"})


@pytest.mark.parametrize("raw", ["", " ", " , ,", "\t"])
def test_a_set_but_empty_keys_variable_is_an_error_not_open_mode(raw):
    # Even with open mode allowed: the operator meant to set keys.
    with pytest.raises(ConfigError, match="SPOOL_API_KEYS is set but holds no key"):
        check(Settings.from_env({"SPOOL_API_KEYS": raw, "SPOOL_ALLOW_OPEN": "1"}))


@pytest.mark.parametrize("text", ["", "\n\n", "# keys go here\n", "  # only a comment\n   \n"])
def test_a_keys_file_without_keys_is_an_error(tmp_path, text):
    path = tmp_path / "keys"
    path.write_text(text)
    with pytest.raises(ConfigError, match="holds no key"):
        check(settings(api_keys_file=str(path), secret_key=SECRET, allow_open=True))


def test_keys_shorter_than_the_minimum_are_refused_without_being_shown():
    short = "k" * (MIN_KEY_LENGTH - 1)
    with pytest.raises(ConfigError, match=f"key #2 has {MIN_KEY_LENGTH - 1} characters") as refused:
        check(settings(api_keys=f"{KEY},{short}", secret_key=SECRET))
    assert short not in str(refused.value)
    with pytest.raises(ConfigError, match="printable ASCII"):
        check(settings(api_keys="k" * 20 + " " + "k" * 20, secret_key=SECRET))
    assert check(settings(api_keys=KEY, secret_key=SECRET)).keys == (KEY,)


def test_keys_need_a_long_enough_secret_key():
    with pytest.raises(ConfigError, match="SPOOL_SECRET_KEY is not"):
        check(settings(api_keys=KEY))
    with pytest.raises(ConfigError, match=f"at least {MIN_SECRET_LENGTH}"):
        check(settings(api_keys=KEY, secret_key="short"))
    with pytest.raises(ConfigError, match="SPOOL_SECRET_KEY_PREVIOUS"):
        check(settings(api_keys=KEY, secret_key=SECRET, secret_key_previous="old"))
    with pytest.raises(ConfigError, match="without SPOOL_SECRET_KEY"):
        check(settings(allow_open=True, secret_key_previous="p" * 40))
    # Oldest first, the current last (it signs).
    previous = f"{'a' * 40}, {'b' * 40}"
    assert check(settings(api_keys=KEY, secret_key=SECRET, secret_key_previous=previous)).secrets == (
        "a" * 40, "b" * 40, SECRET)


@pytest.mark.parametrize("origin", [
    "*", "https://*.example.com", "https://example.com/path", "https://exa(mple).com", "example.com",
    "ftp://example.com", "https://example.com:99999", "https://example.com?x=1", "null", "https://ex ample.com",
    r"https://example\.com", "https://user@example.com",
])
def test_cors_entries_must_be_literal_origins(origin, make_app):
    with pytest.raises(ConfigError, match="SPOOL_CORS_ORIGINS"):
        literal_origins(f"https://ok.example, {origin}")
    with pytest.raises(ConfigError, match="not a literal origin"):
        make_app(cors_origins=origin)


def test_literal_origins_pass_as_they_are():
    raw = "https://chat.example.com/, http://localhost:5173, http://127.0.0.1:8080, http://[::1]:3000"
    assert literal_origins(raw) == ["https://chat.example.com", "http://localhost:5173",
                                    "http://127.0.0.1:8080", "http://[::1]:3000"]


def test_without_spool_models_only_the_default_model_is_allowed(make_app):
    client = make_app(models="", default_model="gpt-4o-mini").test_client()
    refused = client.post("/v1/streams", json={**CHAT, "model": "gpt-4o"})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["message"] == "model must be one of gpt-4o-mini"
    assert client.post("/v1/streams", json={**CHAT, "model": "gpt-4o-mini"}).status_code == 202
    assert client.post("/v1/streams", json=CHAT).status_code == 202
    openai = client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"})
    assert openai.status_code == 404 and "gpt-4o" in openai.get_json()["error"]["message"]


def test_any_model_is_an_explicit_opt_in(make_app):
    client = make_app(models="*").test_client()
    assert client.post("/v1/streams", json={**CHAT, "model": "anything"}).status_code == 202
    assert [m["id"] for m in client.get("/v1/models").get_json()["data"]] == [Settings().default_model]
    with pytest.raises(ConfigError, match="stand alone"):
        make_app(models="*,gpt-4o")


def test_the_owner_hash_is_an_hmac_under_the_secret(make_app):
    app = make_app(api_keys=KEY, secret_key=SECRET)
    body = app.test_client().post("/v1/streams", json=CHAT, headers={"Authorization": f"Bearer {KEY}"}).get_json()
    owner = app.extensions["spool"].store.meta(body["id"]).owner
    assert owner == owner_of(KEY, SECRET)
    # Not the old unsalted hash, and another secret gives another hash.
    assert owner != hashlib.sha256(b"spool-owner\0" + KEY.encode()).hexdigest()[:32]
    assert owner_of(KEY, "t" * 40) != owner


def test_a_rotated_secret_keeps_old_tokens_and_streams(make_app, prefix):
    redis_client = fakeredis.FakeRedis()
    auth = {"Authorization": f"Bearer {KEY}"}

    def app_with(**secrets):
        return make_app(redis_client=redis_client, api_keys=KEY, **secrets)

    old = app_with(secret_key=SECRET)
    body = old.test_client().post("/v1/streams", json=CHAT, headers=auth).get_json()
    new_secret = "n" * 40
    rotated = app_with(secret_key=new_secret, secret_key_previous=SECRET)
    client = rotated.test_client()
    # The old token still reads; the stream still belongs to the key.
    assert client.get(f"{body['url']}?token={body['read_token']}").status_code == 200
    assert client.get(body["url"], headers=auth).status_code == 200
    # New tokens are signed with the new secret only.
    fresh = client.post("/v1/streams", json=CHAT, headers=auth).get_json()
    assert old.test_client().get(f"{fresh['url']}?token={fresh['read_token']}").status_code == 401
    # Once the previous secret is dropped, its tokens are refused.
    dropped = app_with(secret_key=new_secret).test_client()
    assert dropped.get(f"{body['url']}?token={body['read_token']}").status_code == 401


@pytest.mark.parametrize("token", ["²", "²³.x", "１２.x", "9" * 5000 + ".x", "-1.x", "", ".", "1e9.x"])
def test_malformed_token_digits_are_a_401_not_a_500(make_app, token):
    app = make_app(api_keys=KEY, secret_key=SECRET)
    client = app.test_client()
    body = client.post("/v1/streams", json=CHAT, headers={"Authorization": f"Bearer {KEY}"}).get_json()
    for url in (body["url"], body["events_url"]):
        response = client.get(url, query_string={"token": token})
        assert response.status_code == 401, (token, response.get_json())


def test_api_json_is_no_store_and_streams_keep_no_cache(make_app):
    client = make_app().test_client()
    created = client.post("/v1/streams", json=CHAT)
    assert created.headers["Cache-Control"] == "no-store"
    for response in (client.get(created.get_json()["url"]), client.get("/v1/streams/" + "A" * 22),
                     client.get("/v1/models"), client.get("/healthz")):
        assert response.headers["Cache-Control"] == "no-store", response.request.path
    stream = client.post("/v1/streams", json=CHAT, headers={"Accept": "application/x-ndjson"}, buffered=False)
    assert stream.headers["Cache-Control"] == "no-cache"
    stream.close()
