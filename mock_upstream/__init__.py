"""The mock upstream: an OpenAI-compatible model with deterministic answers.

Used by `spool mock-upstream`, `spool dev` without a key, the tests and the
benchmarks. `answers` holds what it answers (pure, no I/O: tests import
`expected_text` and friends from here); `server` serves them over HTTP
(Flask on gevent: import it only after gevent has patched the standard
library, as `spool mock-upstream` does).

It speaks OpenAI's wire format only: it must not import spool, gateway,
worker or cli; a stand-in for someone else's model knows nothing of spool.
"""

from mock_upstream.answers import REFUSAL, answer_tokens, expected_text, tool_arguments

__all__ = ["REFUSAL", "answer_tokens", "expected_text", "tool_arguments"]
