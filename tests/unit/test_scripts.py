"""The Lua scripts (spool/streams/lua/): each file is loaded, its inputs are
named at its top, and its statuses are spool's (StreamStatus), with the
terminal ones defined once, in Python."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from spool.events import StreamStatus
from spool.streams.scripts import NAMES, Scripts, source, terminal_prelude

LUA = resources.files("spool.streams").joinpath("lua")
FILES = sorted(entry.name for entry in LUA.iterdir() if entry.name.endswith(".lua"))


def test_every_lua_file_is_a_registered_script():
    assert FILES == sorted(f"{name}.lua" for name in NAMES)


@pytest.mark.parametrize("name", FILES)
def test_keys_and_argv_are_named_in_locals_at_the_top(name):
    lines = LUA.joinpath(name).read_text().splitlines()
    for number, line in enumerate(lines, 1):
        for literal in re.findall(r"\b(?:KEYS|ARGV)\[\d+\]", line):
            assert re.match(r"local \w+ = ", line), f"{name}:{number}: {literal} outside a `local` naming it"
    # The locals come first: after the first line of code, no literal index.
    code = [i for i, line in enumerate(lines) if line.strip() and not line.startswith("--")]
    named = [i for i in code if re.search(r"\b(?:KEYS|ARGV)\[\d+\]", lines[i])]
    assert named == code[: len(named)], f"{name}: KEYS/ARGV named after other code"


@pytest.mark.parametrize("name", FILES)
def test_statuses_are_spools_and_terminal_ones_come_from_python(name):
    text = LUA.joinpath(name).read_text()
    values = {status.value for status in StreamStatus}
    terminal = {status.value for status in StreamStatus if status.is_terminal}
    # Every status a script compares with is one of StreamStatus's...
    for compared in re.findall(r"status\s*[~=]=\s*'(\w+)'", text):
        assert compared in values, f"{name}: unknown status {compared!r}"
        # ...and no script spells out the terminal set: it asks TERMINAL.
        assert compared not in terminal, f"{name}: compares with {compared!r}; use TERMINAL[status]"
    assert "local TERMINAL" not in text


def test_the_terminal_set_is_generated_from_stream_status():
    prelude = terminal_prelude()
    spelled = set(re.findall(r"(\w+) = true", prelude))
    assert spelled == {status.value for status in StreamStatus if status.is_terminal}
    assert all(source(name).startswith(prelude) for name in NAMES)


def test_scripts_are_read_once_and_registered_once_per_client(redis_client):
    first, second = Scripts.register(redis_client), Scripts.register(redis_client)
    assert first is second and source("append") is source("append")
