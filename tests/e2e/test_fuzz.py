"""Hostile and malformed LSP input, sent to the real server (one per module) as raw JSON-RPC.

Property (hypothesis): whatever a client sends — ranges past the end, negative or huge
positions, reversed ranges, lone surrogates and other text that UTF-8 cannot carry, unknown
URIs and schemes, commands with wrong or missing arguments, settings of the wrong type,
bytes that are not JSON at all — the server

* answers every request, with a result or a deliberate JSON-RPC error (never -32603, the
  "internal error" pygls sends when a handler raised by accident);
* stays up, and still runs `1+1` correctly right after.

The raw writer is needed because the typed client refuses negative positions, lone
surrogates and wrong types before anything is sent. Hypothesis drives the examples from a
worker thread; each LSP exchange runs on the module's event loop.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_lsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from tests.e2e.conftest import (
    config,
    notify_raw,
    request_raw,
    rng,
    send_raw,
    server_alive,
    start,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

T = TypeVar("T")
INTERNAL_ERROR = -32603
EXAMPLES_PER_FAMILY = 12  # x 8 families: about 100 examples in all
ANSWER_TIMEOUT_S = 60.0  # generous: CI machines run other servers at the same time
ALIVE_CODE = "1+1\n"
COMMANDS = (
    "codeexec.run",
    "codeexec.explain",
    "codeexec.fix",
    "codeexec.applyFix",
    "codeexec.restart",
    "codeexec.nope",
)


class Fuzz:
    """Where the module's server and its files are."""

    def __init__(self, client: LanguageClient, root: Path) -> None:
        self.client = client
        self.root = root
        self.alive_uri = (root / "alive.py").as_uri()  # never touched by the examples
        self.open_uris = [(root / name).as_uri() for name in ("fuzz.py", "other.py")]
        self.disk_uri = (root / "disk.py").as_uri()  # on disk, never opened
        fifo = root / "fifo.py"
        os.mkfifo(fifo)
        (root / "binary.py").write_bytes(b"\xff\xfe\x00garbage")
        self.uris = [
            self.alive_uri,
            *self.open_uris,
            self.disk_uri,
            fifo.as_uri(),
            (root / "binary.py").as_uri(),
            root.as_uri(),  # a directory
            (root / "missing.py").as_uri(),
            "file:///dev/zero",  # would never end
            "file:///dev/stdin",  # the server's own protocol stream
            "file:///proc/self/fd/0",
            f"file://{root}/a%00b.py",
            "untitled:Untitled-1",
            f"untitled:{root}/disk.py",  # another scheme must not read the local file
            f"http://example.com{root}/disk.py",
            "vscode-notebook-cell:/x.ipynb#W0sZmlsZQ%3D%3D",
            "",
            "%%%",
            "file://",
            "file:///" + "d/" * 2000 + "deep.py",
            "\ud800",
        ]


@pytest_lsp.fixture(scope="module", config=config())
async def fuzz(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("fuzz")
    await start(lsp_client, "visual-studio-code", root)
    state = Fuzz(lsp_client, root)
    (root / "alive.py").write_text(ALIVE_CODE)
    (root / "disk.py").write_text("print('from disk')\n")
    for uri, text in [(state.alive_uri, ALIVE_CODE), *((u, "x = 1\n") for u in state.open_uris)]:
        notify_raw(
            lsp_client,
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
    lsp_client.fuzz = state  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def state(fuzz: LanguageClient) -> Fuzz:
    return fuzz.fuzz  # type: ignore[attr-defined,no-any-return]


# --- strategies -----------------------------------------------------------------------------
#
# Each example is a well-formed message (whose values may still be hostile: ranges past the
# end or reversed, odd URIs, text UTF-8 cannot carry), and in half of them one part is then
# broken: replaced by a value of another type, a negative or huge number, or deleted. One
# broken part at a time gets much further into the server than messages wrong everywhere.

NASTY = [
    "",
    "\x00",
    "\ud800",
    "\udfff",
    "a\ud83d",
    "\ud83d\ude00",
    "😀",
    "\ufeff",
    "\u2028",
    "\x0c",
    "\r",
    "\r\n\r",
    "\t\t",
    "\\",
    '"',
    "é" * 3,
    "x" * 3000,
]
SMALL = st.integers(0, 12)  # the test documents are short: many of these are past the end
ODD_INTS = st.sampled_from([-1, -3, -(2**31), 2**31 - 1, 2**31, 2**40, 2**53, 2**64, -(2**64)])
FLOATS = st.sampled_from([0.5, -0.0, 1e300, -1e300, math.inf, -math.inf, math.nan])
TEXTS = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(exclude_categories=[]), max_size=8),
    st.sampled_from(NASTY),
)
SCALARS = st.one_of(st.none(), st.booleans(), SMALL, ODD_INTS, FLOATS, TEXTS)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=8,
)
POSITIONS = st.fixed_dictionaries({"line": SMALL, "character": SMALL})
RANGES = st.fixed_dictionaries({"start": POSITIONS, "end": POSITIONS})
DOCUMENT_TEXTS = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from([*NASTY, "x = 1", "def f(:", "    pass", "# %%"]), max_size=8).map(
        "\n".join
    ),
)
NUMERIC_KEYS = ("timeout", "cpuSeconds", "memoryMb", "maxOutputBytes", "maxFileMb")
OTHER_KEYS = ("maxOpenFiles", "envPassthrough", "executor", "python", "llm", "fix", "http")
# Wrong types and out-of-range numbers only: a valid-but-harmful value (a 1 ns timeout, a
# missing interpreter) would rightly make `1+1` fail.
BAD_NUMBERS = st.one_of(
    st.sampled_from([0, -1, -(2**70), 2**70, 1e300, math.inf, -math.inf, math.nan]),
    st.booleans(),
    TEXTS,
    st.lists(SCALARS, max_size=2),
    st.none(),
)
BAD_OTHERS = st.one_of(SMALL, FLOATS, st.booleans(), st.lists(SMALL, max_size=2), st.just({}))
BAD_SETTINGS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            **dict.fromkeys(NUMERIC_KEYS, BAD_NUMBERS),
            **dict.fromkeys(OTHER_KEYS, BAD_OTHERS),
            "python": st.sampled_from(["\x00", "\ud800", "a\x00b"]),
        },
    ),
    st.fixed_dictionaries({"codeexec": JSON}),
    JSON,
)
GARBAGE = [
    b"{not json",
    b'{"jsonrpc": "2.0", "method": "textDocument/hover", "params": "\xff\xfe"}',
    b"[1, 2, 3]",
    b"42",
    b'"just a string"',
    b"null",
    b'{"jsonrpc": "1.0", "id": 1, "method": "textDocument/hover"}',
    b'{"id": 7, "method": "textDocument/hover"}',
    b'{"jsonrpc": "2.0", "id": [1], "method": "nope"}',
    b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "textDocument/hover"}',
    b'{"jsonrpc": "2.0", "id": 1.5, "method": "nope"}',
    b'{"jsonrpc": "2.0", "id": "raw-response", "result": 5}',
    b'{"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration", '
    b'"params": {"settings": {"timeout": NaN, "memoryMb": Infinity}}}',
]

Action = tuple[str, str, Any]  # ("request" | "notify" | "bytes", method, params)


FAMILIES = (
    "codeexec.run",
    "codeexec.explain",
    "codeexec.fix",
    "other commands",
    "document requests",
    "document notifications",
    "settings",
    "not a message",
)


def well_formed(state: Fuzz, family: str) -> st.SearchStrategy[Action]:
    readable = [state.alive_uri, *state.open_uris, state.disk_uri]
    uri = st.one_of(st.sampled_from(readable), st.sampled_from(state.uris))
    mutable = st.sampled_from([*state.open_uris, state.disk_uri, "untitled:Untitled-1"])
    document = st.fixed_dictionaries({"uri": uri})
    diagnostic = st.fixed_dictionaries(
        {"range": RANGES, "message": TEXTS},
        optional={"code": st.one_of(SMALL, TEXTS), "source": TEXTS, "severity": SMALL},
    )
    arguments = st.one_of(
        st.tuples(uri).map(list),
        st.tuples(uri, RANGES).map(list),
        st.tuples(uri, RANGES, diagnostic).map(list),
        st.lists(st.one_of(uri, RANGES, diagnostic), max_size=4),
    )

    def request(method: str, params: st.SearchStrategy[Any]) -> st.SearchStrategy[Action]:
        return st.tuples(st.just("request"), st.just(method), params)

    def notify(method: str, params: st.SearchStrategy[Any]) -> st.SearchStrategy[Action]:
        return st.tuples(st.just("notify"), st.just(method), params)

    def execute(commands: st.SearchStrategy[str]) -> st.SearchStrategy[Action]:
        params = st.fixed_dictionaries({"command": commands}, optional={"arguments": arguments})
        return request("workspace/executeCommand", params)

    if family.startswith("codeexec."):
        return execute(st.just(family))
    if family == "other commands":
        return execute(st.sampled_from(COMMANDS[3:]))
    if family == "document requests":
        return st.one_of(
            request(
                "textDocument/hover",
                st.fixed_dictionaries({"textDocument": document, "position": POSITIONS}),
            ),
            request(
                "textDocument/codeAction",
                st.fixed_dictionaries(
                    {
                        "textDocument": document,
                        "range": RANGES,
                        "context": st.fixed_dictionaries(
                            {"diagnostics": st.lists(diagnostic, max_size=2)}
                        ),
                    }
                ),
            ),
            request(
                "textDocument/inlayHint",
                st.fixed_dictionaries({"textDocument": document, "range": RANGES}),
            ),
        )
    if family == "document notifications":
        change = st.one_of(
            st.fixed_dictionaries({"range": RANGES, "text": TEXTS}),
            st.fixed_dictionaries({"text": DOCUMENT_TEXTS}),
        )
        opened = st.fixed_dictionaries(
            {
                "uri": mutable,
                "languageId": st.sampled_from(["python", "plaintext", ""]),
                "version": SMALL,
                "text": DOCUMENT_TEXTS,
            }
        )
        versioned = st.fixed_dictionaries({"uri": mutable, "version": SMALL})
        return st.one_of(
            notify("textDocument/didOpen", st.fixed_dictionaries({"textDocument": opened})),
            notify(
                "textDocument/didChange",
                st.fixed_dictionaries(
                    {"textDocument": versioned, "contentChanges": st.lists(change, max_size=3)}
                ),
            ),
            notify("textDocument/didClose", st.fixed_dictionaries({"textDocument": document})),
        )
    if family == "settings":
        return notify(
            "workspace/didChangeConfiguration", st.fixed_dictionaries({"settings": BAD_SETTINGS})
        )
    assert family == "not a message"
    return st.one_of(
        st.tuples(st.just("bytes"), st.just(""), st.sampled_from(GARBAGE)),
        request("codeexec/unknownRequest", JSON),
        notify("codeexec/unknownNotification", JSON),
        notify("$/cancelRequest", st.fixed_dictionaries({"id": st.one_of(SMALL, TEXTS)})),
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (the root too), as key/index paths."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _broken(value: Any, path: tuple[Any, ...], replacement: Any) -> Any:
    """`value` with the part at `path` replaced (or deleted, for the DELETE marker)."""
    if not path:
        return replacement
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    if not rest and replacement is DELETE:
        del copy[head]
    else:
        copy[head] = _broken(value[head], rest, replacement)
    return copy


DELETE = object()


@st.composite
def actions(draw: st.DrawFn, state: Fuzz, family: str) -> Action:
    kind, method, params = draw(well_formed(state, family))
    if kind == "bytes" or not draw(st.sampled_from([False, True])):
        return kind, method, params
    # Leaves first: Hypothesis favours the start of a list, and breaking the root alone
    # tests little.
    path = draw(st.sampled_from(_paths(params)[::-1]))
    replacement = draw(st.one_of(ODD_INTS, FLOATS, TEXTS, JSON, st.just(DELETE)))
    if replacement is DELETE and not path:
        replacement = None
    return kind, method, _broken(params, path, replacement)


# --- driving the server -----------------------------------------------------------------------


def on_loop(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(work, loop).result(ANSWER_TIMEOUT_S + 10)


async def perform(client: LanguageClient, kind: str, method: str, params: Any) -> None:
    if kind == "bytes":
        assert isinstance(params, bytes)
        send_raw(client, params)
    elif kind == "notify":
        notify_raw(client, method, params)
    else:
        try:
            await request_raw(client, method, params, timeout=ANSWER_TIMEOUT_S)
        except JsonRpcException as error:
            assert error.code != INTERNAL_ERROR, f"{method} {params!r:.300}: {error}"
            assert str(error).strip()


async def still_serves(client: LanguageClient, state: Fuzz) -> None:
    # Back to sane settings, so the next example starts from the same place.
    notify_raw(client, "workspace/didChangeConfiguration", {"settings": {"codeexec": {}}})
    result = await request_raw(
        client,
        "workspace/executeCommand",
        {"command": "codeexec.run", "arguments": [state.alive_uri]},
        timeout=ANSWER_TIMEOUT_S,
    )
    assert server_alive(client)
    assert result["status"] == "ok" and result["value"] == "2", result


@pytest.mark.parametrize("family", FAMILIES)
async def test_the_server_survives_malformed_input(
    fuzz: LanguageClient, state: Fuzz, family: str
) -> None:
    loop = asyncio.get_running_loop()
    await still_serves(fuzz, state)

    @given(action=actions(state, family))
    @settings(
        max_examples=EXAMPLES_PER_FAMILY,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def survives(action: Action) -> None:
        examples.append(action)
        on_loop(loop, perform(fuzz, *action))
        on_loop(loop, still_serves(fuzz, state))

    examples: list[Action] = []
    await asyncio.to_thread(survives)
    assert len(examples) >= EXAMPLES_PER_FAMILY // 2


# --- regressions: each one a bug the fuzzing found ------------------------------------------


async def command(client: LanguageClient, name: str, *arguments: Any) -> Any:
    params = {"command": name, "arguments": list(arguments)}
    return await request_raw(client, "workspace/executeCommand", params)


async def refused(client: LanguageClient, name: str, *arguments: Any) -> str:
    """The message of the InvalidParams error the command must be answered with."""
    with pytest.raises(JsonRpcException) as error:
        await command(client, name, *arguments)
    assert error.value.code == lsp.ErrorCodes.InvalidParams, error.value
    return str(error.value)


async def test_params_that_do_not_fit_the_lsp_types_get_an_answer(fuzz: LanguageClient) -> None:
    # pygls dropped these without a word: the client waited forever.
    for params in [
        None,
        [],
        {"textDocument": {"uri": "file:///x.py"}, "position": {"line": -1, "character": 0}},
        {"textDocument": {"uri": "file:///x.py"}, "position": {"line": 2**40, "character": 0}},
        {"textDocument": {"uri": 5}, "position": {"line": 0, "character": "x"}},
    ]:
        with pytest.raises(JsonRpcException) as error:
            await request_raw(fuzz, "textDocument/hover", params, timeout=ANSWER_TIMEOUT_S)
        assert error.value.code == lsp.ErrorCodes.InvalidParams
        assert "textDocument/hover" in str(error.value)


async def test_bytes_that_are_not_a_message_are_answered_with_a_null_id(
    fuzz: LanguageClient, state: Fuzz
) -> None:
    errors: list[lsp.ResponseErrorMessage] = []
    handle = fuzz.protocol._handle_response

    def record(msg_id: Any, result: Any = None, error: Any = None) -> None:
        if msg_id is None and error is not None:
            errors.append(error)
        handle(msg_id, result, error)

    fuzz.protocol._handle_response = record  # type: ignore[method-assign]
    try:
        send_raw(fuzz, b"{not json")
        send_raw(fuzz, b"[1, 2]")
        await still_serves(fuzz, state)
    finally:
        fuzz.protocol._handle_response = handle  # type: ignore[method-assign]
    codes = {error.code for error in errors}
    assert codes == {lsp.ErrorCodes.ParseError, lsp.ErrorCodes.InvalidRequest}, errors
    shown = [m.message for m in fuzz.messages if "internal error" in m.message]
    assert not shown, shown  # a client's garbage is not the user's problem


async def test_positions_past_what_lsp_can_express_are_clamped(
    fuzz: LanguageClient, state: Fuzz
) -> None:
    # Used to fail with -32603: lsprotocol refuses a Position above 2**31 - 1.
    result = await command(fuzz, "codeexec.run", state.alive_uri, rng(0, 2**40, 2**45, 2**70))
    assert result["status"] == "ok"


@pytest.mark.parametrize(
    "uri",
    ["untitled:{root}/disk.py", "http://example.com{root}/disk.py", "vscode-vfs://x{root}/disk.py"],
)
async def test_other_schemes_are_not_read_from_the_local_disk(
    fuzz: LanguageClient, state: Fuzz, uri: str
) -> None:
    # pygls maps any URI's path to a local file: `untitled:/etc/passwd` ran /etc/passwd.
    message = await refused(fuzz, "codeexec.run", uri.format(root=state.root))
    assert "not open in the editor" in message


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/stdin", "/proc/self/fd/0", "{root}/fifo.py"])
async def test_unopened_files_that_are_not_regular_files_are_refused(
    fuzz: LanguageClient, state: Fuzz, path: str
) -> None:
    # /dev/zero never ended (the server hung, then ran out of memory); /dev/stdin read the
    # LSP stream itself; a FIFO blocked the event loop.
    message = await refused(fuzz, "codeexec.run", "file://" + path.format(root=state.root))
    assert "not a regular file" in message
    await still_serves(fuzz, state)


async def test_unopened_files_run_but_leave_no_state_behind(
    fuzz: LanguageClient, state: Fuzz
) -> None:
    result = await command(fuzz, "codeexec.run", state.disk_uri)
    assert result["stdout"] == "from disk\n"
    hover = await request_raw(
        fuzz,
        "textDocument/hover",
        {"textDocument": {"uri": state.disk_uri}, "position": {"line": 0, "character": 0}},
    )
    assert hover is None  # no didClose will ever come to forget it


async def test_code_actions_for_a_file_that_cannot_be_read_are_none(fuzz: LanguageClient) -> None:
    # Used to be -32603 (FileNotFoundError from reading the unopened file).
    actions = await request_raw(
        fuzz,
        "textDocument/codeAction",
        {
            "textDocument": {"uri": "file:///nonexistent/x.py"},
            "range": rng(0, 0, 0, 0),
            "context": {"diagnostics": []},
        },
    )
    assert actions == []


async def test_fix_needs_the_document_open(fuzz: LanguageClient, state: Fuzz) -> None:
    # The fix is applied as a versioned edit of the editor's copy: there is none.
    message = await refused(fuzz, "codeexec.fix", state.disk_uri, rng(0, 0, 1, 0))
    assert "not open in the editor" in message


async def test_explain_and_fix_past_the_end_are_invalid_params_not_internal_errors(
    fuzz: LanguageClient, state: Fuzz
) -> None:
    uri = state.open_uris[0]
    notify_raw(
        fuzz,
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": "x = 1\n"}},
    )
    assert "past the end" in await refused(fuzz, "codeexec.explain", uri, rng(50, 0, 60, 0))
    assert "outside the document" in await refused(fuzz, "codeexec.fix", uri, rng(50, 0, 50, 0))
    diagnostic = {"message": "boom", "range": rng(99, 0, 99, 1)}
    message = await refused(fuzz, "codeexec.fix", uri, rng(0, 0, 0, 0), diagnostic)
    assert "outside the document" in message


async def test_a_lone_surrogate_in_the_document_is_an_error_result_not_a_crash(
    fuzz: LanguageClient, state: Fuzz
) -> None:
    uri = state.open_uris[1]
    text = "print('\ud800')\nx = '\udfff'\n"
    notify_raw(
        fuzz,
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )
    # The statement at a cursor used ast.parse, which raises ValueError for lone surrogates.
    result = await command(fuzz, "codeexec.run", uri, rng(0, 0, 0, 0))
    assert result["status"] == "error"
    await still_serves(fuzz, state)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["{alive}", "{range}", "extra"], "codeexec.explain takes [uri, range?]"),
        ([], "codeexec.explain takes [uri, range?]"),
    ],
)
async def test_explain_checks_its_argument_count(
    fuzz: LanguageClient, state: Fuzz, arguments: list[str], expected: str
) -> None:
    values = {"{alive}": state.alive_uri, "{range}": rng(0, 0, 0, 3)}
    message = await refused(fuzz, "codeexec.explain", *(values.get(a, a) for a in arguments))
    assert expected in message


async def test_apply_fix_names_its_own_arguments(fuzz: LanguageClient, state: Fuzz) -> None:
    message = await refused(fuzz, "codeexec.applyFix", state.alive_uri, 1)
    assert "codeexec.applyFix takes [uri]" in message


async def test_a_five_megabyte_document(fuzz: LanguageClient, state: Fuzz) -> None:
    uri = (state.root / "huge.py").as_uri()
    text = "x = 1\n" * (5 * 1024 * 1024 // 6) + "print(x + 1)\n"
    last = text.count("\n") - 1
    notify_raw(
        fuzz,
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )
    result = await command(fuzz, "codeexec.run", uri, rng(last - 1, 0, last + 5, 0))
    assert result["stdout"] == "2\n", result
    assert "past the end" in await refused(
        fuzz, "codeexec.run", uri, rng(last + 10, 0, last + 20, 0)
    )
    reversed_range = await command(fuzz, "codeexec.run", uri, rng(last + 1, 0, last, 0))
    assert reversed_range["status"] == "ok"
    actions = await request_raw(
        fuzz,
        "textDocument/codeAction",
        {"textDocument": {"uri": uri}, "range": rng(3, 0, 3, 0), "context": {"diagnostics": []}},
    )
    assert any(action["title"] == "Run statement" for action in actions)
    notify_raw(
        fuzz,
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"range": rng(last + 99, 0, 0, 0), "text": "\ud800\n"}],
        },
    )
    notify_raw(fuzz, "textDocument/didClose", {"textDocument": {"uri": uri}})
    await still_serves(fuzz, state)


# --- settings of the wrong type at initialize -------------------------------------------------


@pytest_lsp.fixture(config=config())
async def fresh(lsp_client: LanguageClient) -> AsyncIterator[LanguageClient]:
    yield lsp_client
    await lsp_client.shutdown_session()


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize(
    ("options", "warnings"),
    [
        (5, []),
        ("fast", []),
        ([1, 2], []),
        ({"codeexec": 5}, []),
        (
            {"timeout": "soon", "llm": 5, "fix": [1], "executor": 3, "envPassthrough": "PATH"},
            ["codeexec.timeout: expected a positive number", "codeexec.executor: expected"],
        ),
        (
            # Used to make every run fail: setrlimit overflowed, a NaN timer fired at once.
            {"timeout": math.nan, "memoryMb": 1e30, "maxOpenFiles": 2**70, "python": "\x00"},
            [
                "codeexec.timeout: NaN is not a number; using the default (30)",
                "codeexec.memoryMb: 1,000,000,000,000,000,019,884,624,838,656 is over the maximum",
                "codeexec.maxOpenFiles: 1,180,591,620,717,411,303,424 is over the maximum",
                "codeexec.python: '\\x00' is not a usable path",
            ],
        ),
    ],
    ids=["number", "string", "list", "codeexec-number", "wrong-types", "out-of-range"],
)
async def test_initialization_options_of_the_wrong_type(
    fresh: LanguageClient, tmp_path: Path, options: Any, warnings: list[str]
) -> None:
    (tmp_path / "alive.py").write_text(ALIVE_CODE)
    await start(fresh, "neovim", tmp_path, options=options)
    run = await command(fresh, "codeexec.run", (tmp_path / "alive.py").as_uri())
    assert run["status"] == "ok" and run["value"] == "2"
    shown = [message.message for message in fresh.messages]
    for warning in warnings:
        assert any(warning in message for message in shown), (warning, shown)
