"""GET /upstream: whether the answers come from the built-in mock model.

`spool dev` sets SPOOL_MOCK_UPSTREAM=1 when it starts the mock (no
OPENAI_API_KEY), and the web page shows a notice then
(frontend/src/MockNotice.tsx). Outside /v1 on purpose: the page asks before
it has any key, the answer holds no secret, and it is not part of the API
(nginx, which does not proxy it, serves the page instead, and the page then
shows nothing).
"""

from __future__ import annotations

import os

from flask import Blueprint, jsonify

upstream_info = Blueprint("upstream_info", __name__)


@upstream_info.get("/upstream")
def upstream():
    return jsonify(mock=os.environ.get("SPOOL_MOCK_UPSTREAM") == "1")
