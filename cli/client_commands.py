"""The client commands of `spool`: chat, status and tail.

Every failure ends as one line on stderr and a non-zero exit, never a
traceback (see `run`): 1 for an error, 130 for Ctrl-C, 141 (as for SIGPIPE)
when stdout's reader went away (`spool tail ID | head`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable

# cli.client (http.client) imports ssl: only the commands below import it,
# after parsing, so `spool worker` can still patch ssl with gevent first.

DEFAULT_URL = "http://127.0.0.1:8000"


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register chat, status and tail on the `spool` parser."""
    url = {"default": os.environ.get("SPOOL_URL", DEFAULT_URL), "help": "gateway URL (default $SPOOL_URL or %(default)s)"}
    chat = commands.add_parser("chat", help="ask a question and stream the answer to the terminal")
    chat.add_argument("prompt")
    chat.add_argument("--model", default=None)
    chat.add_argument("--system", default=None, help="a system message")
    chat.add_argument("--max-tokens", type=int, default=None)
    chat.add_argument("--url", **url)
    status = commands.add_parser("status", help="print a stream's snapshot as JSON")
    status.add_argument("stream_id")
    status.add_argument("--url", **url)
    tail = commands.add_parser("tail", help="print a stream's events as NDJSON, following it live")
    tail.add_argument("stream_id")
    tail.add_argument("--after", type=int, default=0, help="start after this seq")
    tail.add_argument("--url", **url)


def run(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a client command so its failures end as one line and an exit status."""

    @functools.wraps(command)
    def wrapped(args: argparse.Namespace) -> int:
        from cli.client import GatewayUnreachableError, SpoolClientError

        try:
            return command(args)
        except GatewayUnreachableError as exc:
            print(f"spool: {exc} (is it running? `spool dev` starts one; --url or $SPOOL_URL names another)",
                  file=sys.stderr)
            return 1
        except (SpoolClientError, TimeoutError) as exc:
            print(f"spool: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            # The reader of stdout left: say nothing. Point stdout at
            # /dev/null so the interpreter's final flush fails no more.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 141

    return wrapped


@run
def chat(args: argparse.Namespace) -> int:
    """Stream the answer to stdout; the stream id and any error go to stderr.
    Ctrl-C cancels the generation on the server."""
    from cli.client import SpoolClient

    client = SpoolClient(args.url)
    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": args.prompt})
    params = {k: v for k, v in (("model", args.model), ("max_tokens", args.max_tokens)) if v is not None}
    # Ctrl-C here: nothing was queued, or we never learnt its id (run: 130).
    stream_id = client.create(messages, **params)
    print(f"stream {stream_id}", file=sys.stderr, flush=True)
    stream = client.events(stream_id)
    printer = EventPrinter()
    try:
        for event in stream:
            printer.print(event)
            if event["type"] == "error":
                print(f"\nspool: {event['code']}: {event['message']}", file=sys.stderr)
                return 1
            elif event["type"] == "cancelled":
                print("\nspool: cancelled", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        status = stream.cancel()
        print(f"\nspool: cancelled ({status['status']})", file=sys.stderr)
        return 130
    printer.end()
    return 0


class EventPrinter:
    """Prints an answer as it streams: text to stdout, reasoning (dimmed) to
    stderr, each tool call as `-> name(arguments)`, a refusal as such. A
    `reset` says so and the answer follows again; the end names the tool
    calls to run, from the fold of every event (spool/message.py)."""

    def __init__(self, out=None, err=None) -> None:
        from spool.message import MessageFold

        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.fold = MessageFold()
        self._section: object = None

    def print(self, event: dict) -> None:
        type_ = event["type"]
        self.fold.add(type_, {k: v for k, v in event.items() if k not in ("seq", "type")})
        if type_ == "delta":
            self._enter("text", self.out, "")
            self.out.write(event["text"])
        elif type_ == "reasoning":
            self._enter("reasoning", self.err, "\x1b[2mthinking: ")
            self.err.write(event["text"])
        elif type_ == "refusal":
            self._enter("refusal", self.out, "refusal: ")
            self.out.write(event["text"])
        elif type_ == "tool_call":
            self._enter(("call", event["index"]), self.out, f"-> {event.get('name')}(")
        elif type_ == "tool_call_delta":
            self._enter(("call", event["index"]), self.out, "-> (")
            self.out.write(event["arguments"])
        elif type_ == "reset":
            self._enter(None, self.err, "")
            print(f"spool: the answer restarts ({event.get('reason')})", file=self.err)
        self.out.flush()
        self.err.flush()

    def end(self) -> None:
        """Close the last section; name the tool calls the model asked for."""
        self._enter(None, self.out, "")
        calls = self.fold.tool_calls()
        if self.fold.finish_reason == "tool_calls" or calls:
            names = ", ".join(f"{c['id']} {(c.get('function') or c.get('custom') or {}).get('name')}" for c in calls)
            print(f"spool: the model asks to call {names}", file=self.err)

    def _enter(self, section: object, stream, header: str) -> None:
        """Start `section` (writing `header`), closing the one before."""
        if section == self._section:
            return
        if self._section == "reasoning":
            self.err.write("\x1b[0m\n")
        elif isinstance(self._section, tuple):
            self.out.write(")\n")
        elif self._section is not None:
            self.out.write("\n")
        self._section = section
        stream.write(header)


@run
def status(args: argparse.Namespace) -> int:
    """Print the snapshot of a stream."""
    from cli.client import SpoolClient

    print(json.dumps(SpoolClient(args.url).status(args.stream_id), indent=2, ensure_ascii=False), flush=True)
    return 0


@run
def tail(args: argparse.Namespace) -> int:
    """Print every event (one JSON line each) until the stream ends."""
    from cli.client import SpoolClient

    stream = SpoolClient(args.url).events(args.stream_id, after=args.after)
    try:
        for event in stream:
            print(json.dumps(event, ensure_ascii=False), flush=True)
    finally:
        stream.close()
    return 0
