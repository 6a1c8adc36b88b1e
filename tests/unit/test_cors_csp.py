"""CORS allowlist (gateway/cors.py) and the page's security headers (gateway/static.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.static import CONTENT_SECURITY_POLICY

ALLOWED = "https://chat.example.com"
KEY = "cors-key-0123456789-abcdefghijklmnop"
ROOT = Path(__file__).resolve().parents[2]


def preflight(client, origin: str):
    return client.options("/v1/streams", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})


def test_preflight_from_an_allowed_origin_passes_without_a_key(make_app):
    client = make_app(cors_origins=f"{ALLOWED}/, https://other.example", api_keys=KEY, secret_key="cors-secret-0123456789-abcdefghijkl").test_client()
    response = preflight(client, ALLOWED)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    actual = client.get("/v1/streams/" + "A" * 22, headers={"Origin": ALLOWED, "Authorization": f"Bearer {KEY}"})
    assert actual.status_code == 404
    assert actual.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "X-Stream-Id" in actual.headers["Access-Control-Expose-Headers"]
    assert "X-Stream-Token" in actual.headers["Access-Control-Expose-Headers"]


def test_other_origins_get_no_cors_headers(make_app):
    client = make_app(cors_origins=ALLOWED).test_client()
    response = preflight(client, "https://evil.example")
    assert "Access-Control-Allow-Origin" not in response.headers


def test_no_cors_by_default(make_app):
    response = preflight(make_app().test_client(), ALLOWED)
    assert "Access-Control-Allow-Origin" not in response.headers


def test_the_page_carries_the_csp(make_app, tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    client = make_app(static_dir=str(tmp_path)).test_client()
    for path in ["/", "/some/page/state"]:
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY


def test_docs_carry_the_same_csp():
    assert CONTENT_SECURITY_POLICY in (ROOT / "docs" / "security.md").read_text()


def test_built_frontend_has_no_inline_script_or_style():
    index = ROOT / "frontend" / "dist" / "index.html"
    if not index.exists():
        pytest.skip("frontend not built (make frontend)")
    html = index.read_text()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="/' in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in html and " style=" not in html
