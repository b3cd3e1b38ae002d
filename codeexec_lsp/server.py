"""The language server: handlers translate between LSP messages and plain values."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from codeexec_lsp import __version__, present, snippet
from codeexec_lsp.actions.run import build_request, run_snippet, workspace_for
from codeexec_lsp.config import Settings, SettingsStore, section_of
from codeexec_lsp.execution.base import Executor
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.inflight import InFlightRuns
from codeexec_lsp.positions import from_client
from codeexec_lsp.results import RunResult
from codeexec_lsp.run_history import RunHistory, RunRecord

log = logging.getLogger(__name__)

RUN = "codeexec.run"
KIND_RUN = "codeexec.run"
KIND_RUN_FILE = "codeexec.runFile"
PYTHON_LANGUAGE_IDS = {"python"}
PYTHON_SUFFIXES = (".py", ".pyw", ".pyi", ".ipy")


class CodeexecServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("codeexec-lsp", __version__)
        self.settings_store = SettingsStore()
        self.settings = Settings()
        self.history = RunHistory()
        self.in_flight = InFlightRuns()
        self.executor: Executor = LocalExecutor()
        self._warned: set[str] = set()

    def report_server_error(self, error: Exception, source: Any) -> None:
        log.exception("codeexec-lsp internal error", exc_info=error)
        with contextlib.suppress(Exception):
            self.window_show_message(
                lsp.ShowMessageParams(
                    type=lsp.MessageType.Error,
                    message=f"codeexec-lsp hit an internal error ({type(error).__name__}: "
                    f"{error}). It keeps running; details are in its log.",
                )
            )

    # --- plumbing the handlers share ------------------------------------------------------

    @property
    def encoding(self) -> str:
        return str(self.workspace.position_encoding or lsp.PositionEncodingKind.Utf16)

    def capability(self, path: str) -> Any:
        node: Any = self.client_capabilities
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                return None
        return node

    def apply_settings(self) -> None:
        self.settings, warnings = self.settings_store.current()
        for warning in warnings:
            if warning in self._warned:
                continue
            self._warned.add(warning)
            self.window_show_message(
                lsp.ShowMessageParams(type=lsp.MessageType.Warning, message=warning)
            )

    async def pull_settings(self) -> None:
        if not self.capability("workspace.configuration"):
            return
        try:
            answer = await self.workspace_configuration_async(
                lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section="codeexec")])
            )
        except Exception as exc:  # a client that fails this request must not stop us
            log.warning("workspace/configuration failed: %s", exc)
            return
        if answer and isinstance(answer[0], dict):
            self.settings_store.workspace = dict(answer[0])

    def document_path(self, document: TextDocument) -> str:
        return document.path if document.uri.startswith("file:") else document.uri

    def workspace_folders(self) -> list[str]:
        folders = [to_fs_path(folder.uri) for folder in self.workspace.folders.values()]
        return [folder for folder in [*folders, self.workspace.root_path] if folder]

    def publish(self, uri: str) -> None:
        document = self.workspace.get_text_document(uri)
        found = present.diagnostics(
            uri,
            self.history.records(uri),
            document.lines,
            self.encoding,
            related_information=bool(
                self.capability("text_document.publish_diagnostics.related_information")
            ),
        )
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, diagnostics=found, version=document.version)
        )
        if self.capability("workspace.inlay_hint.refresh_support"):
            self.workspace_inlay_hint_refresh(None)

    # --- running ------------------------------------------------------------------------

    def snippet_for(self, uri: str, range_: lsp.Range | None) -> snippet.Snippet:
        document = self.workspace.get_text_document(uri)
        path = self.document_path(document)
        text = document.source
        if range_ is None:
            return snippet.whole_file(text, path)
        lines = document.lines
        encoding = self.encoding

        def point(position: lsp.Position) -> tuple[int, int]:
            line = position.line
            line_text = lines[line] if 0 <= line < len(lines) else ""
            return line, from_client(line_text.rstrip("\r\n"), position.character, encoding)

        start, end = point(range_.start), point(range_.end)
        if start == end:
            return snippet.for_position(text, path, start[0])
        return snippet.for_selection(text, path, start, end)

    async def run(self, uri: str, range_: lsp.Range | None) -> RunResult:
        try:
            code = self.snippet_for(uri, range_)
        except snippet.SnippetError as exc:
            self.window_show_message(
                lsp.ShowMessageParams(type=lsp.MessageType.Warning, message=f"codeexec: {exc}")
            )
            raise JsonRpcInvalidParams(str(exc)) from exc
        document = self.workspace.get_text_document(uri)
        request = build_request(
            code, self.settings, workspace_for(code.path, self.workspace_folders())
        )
        key = (uri, code.first_line, code.last_line)
        cancel = self.in_flight.start(key)
        lines_before = document.lines[code.first_line : code.last_line + 1]
        label = code.describe()
        async with self.work_progress(f"Running {label}", cancel) as report:
            report(f"{request.python}")
            try:
                result = await run_snippet(self.executor, request, cancel)
            finally:
                self.in_flight.finish(key, cancel)
        if result.status == "internal":
            self.window_show_message(
                lsp.ShowMessageParams(type=lsp.MessageType.Error, message=result.message)
            )
        if result.status == "cancelled":
            return result
        current = self.workspace.get_text_document(uri).lines
        if current[code.first_line : code.last_line + 1] == lines_before:
            self.history.add(
                uri, RunRecord(code.first_line, code.last_line, result, label, code.path)
            )
            self.publish(uri)
        return result

    @contextlib.asynccontextmanager
    async def work_progress(self, title: str, cancel: asyncio.Event) -> Any:
        """Cancellable work-done progress, when the client supports it."""
        if not self.capability("window.work_done_progress"):
            yield lambda message: None
            return
        token = f"codeexec-{uuid.uuid4()}"
        try:
            await self.work_done_progress.create_async(token)
        except Exception as exc:
            log.info("window/workDoneProgress/create refused: %s", exc)
            yield lambda message: None
            return
        loop = asyncio.get_running_loop()
        future = self.work_done_progress.tokens.get(token)
        if future is not None:
            future.add_done_callback(
                lambda done: loop.call_soon_threadsafe(cancel.set) if done.cancelled() else None
            )
        self.work_done_progress.begin(
            token, lsp.WorkDoneProgressBegin(title=title, cancellable=True)
        )

        def report(message: str) -> None:
            self.work_done_progress.report(token, lsp.WorkDoneProgressReport(message=message))

        try:
            yield report
        finally:
            message = "cancelled" if cancel.is_set() else "done"
            self.work_done_progress.end(token, lsp.WorkDoneProgressEnd(message=message))
            self.work_done_progress.tokens.pop(token, None)


server = CodeexecServer()


def _is_python(document: TextDocument) -> bool:
    language = getattr(document, "language_id", None)
    if language:
        return language in PYTHON_LANGUAGE_IDS
    return document.uri.endswith(PYTHON_SUFFIXES)


def _range_json(range_: lsp.Range) -> dict[str, Any]:
    return {
        "start": {"line": range_.start.line, "character": range_.start.character},
        "end": {"line": range_.end.line, "character": range_.end.character},
    }


def _parse_range(value: Any) -> lsp.Range | None:
    if value is None:
        return None
    try:
        start, end = value["start"], value["end"]
        numbers = [start["line"], start["character"], end["line"], end["character"]]
    except (TypeError, KeyError) as exc:
        raise JsonRpcInvalidParams(
            'range must look like {"start": {"line", "character"}, "end": {...}}'
        ) from exc
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        raise JsonRpcInvalidParams("range positions must be non-negative integers")
    return lsp.Range(
        start=lsp.Position(line=numbers[0], character=numbers[1]),
        end=lsp.Position(line=numbers[2], character=numbers[3]),
    )


def _parse_target(ls: CodeexecServer, args: tuple[Any, ...]) -> tuple[str, lsp.Range | None]:
    if not args or not isinstance(args[0], str) or len(args) > 2:
        raise JsonRpcInvalidParams("codeexec.run takes [uri, range?]")
    uri = args[0]
    try:
        ls.workspace.get_text_document(uri).source  # noqa: B018 - unreadable -> clear error
    except (OSError, ValueError) as exc:
        raise JsonRpcInvalidParams(f"cannot read {uri}: open it in the editor first") from exc
    return uri, _parse_range(args[1] if len(args) > 1 else None)


@server.feature(lsp.INITIALIZE)
def initialize(ls: CodeexecServer, params: lsp.InitializeParams) -> None:
    section = section_of(params.initialization_options)
    ls.settings_store.initialization = dict(section) if section else {}
    ls.settings, _ = ls.settings_store.current()


@server.feature(lsp.INITIALIZED)
async def initialized(ls: CodeexecServer, params: lsp.InitializedParams) -> None:
    await ls.pull_settings()
    ls.apply_settings()


@server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(
    ls: CodeexecServer, params: lsp.DidChangeConfigurationParams
) -> None:
    settings = params.settings
    if isinstance(settings, dict) and settings:
        section = section_of(settings)
        ls.settings_store.pushed = dict(section) if section else {}
    await ls.pull_settings()
    ls.apply_settings()


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CodeexecServer, params: lsp.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    changed = False
    for change in params.content_changes:
        if isinstance(change, lsp.TextDocumentContentChangePartial):
            start, end = change.range.start, change.range.end
            changed |= ls.history.edit(uri, start.line, start.character, end.line, change.text)
        else:
            changed |= ls.history.forget(uri)
    if changed:
        ls.publish(uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: CodeexecServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.in_flight.cancel_where(lambda key: key[0] == uri)
    if ls.history.forget(uri):
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(
    lsp.TEXT_DOCUMENT_CODE_ACTION,
    lsp.CodeActionOptions(code_action_kinds=[KIND_RUN, KIND_RUN_FILE]),
)
def code_action(ls: CodeexecServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    document = ls.workspace.get_text_document(params.text_document.uri)
    if not _is_python(document):
        return []
    uri, range_ = document.uri, params.range
    if range_.start == range_.end:
        in_cell = snippet.cell_span(document.source, range_.start.line) is not None
        title = "Run cell" if in_cell else "Run statement"
    else:
        title = "Run selection"
    actions = [
        lsp.CodeAction(
            title=title,
            kind=KIND_RUN,
            command=lsp.Command(title=title, command=RUN, arguments=[uri, _range_json(range_)]),
        ),
        lsp.CodeAction(
            title="Run file",
            kind=KIND_RUN_FILE,
            command=lsp.Command(title="Run file", command=RUN, arguments=[uri]),
        ),
    ]
    only = params.context.only
    if only:
        actions = [a for a in actions if any(_kind_matches(a.kind, wanted) for wanted in only)]
    return actions


def _kind_matches(kind: str | None, wanted: str) -> bool:
    return kind is not None and (kind == wanted or kind.startswith(f"{wanted}."))


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def hover(ls: CodeexecServer, params: lsp.HoverParams) -> lsp.Hover | None:
    record = ls.history.at_line(params.text_document.uri, params.position.line)
    if record is None:
        return None
    return lsp.Hover(
        contents=lsp.MarkupContent(
            kind=lsp.MarkupKind.Markdown, value=present.hover_markdown(record)
        )
    )


@server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT)
def inlay_hint(ls: CodeexecServer, params: lsp.InlayHintParams) -> list[lsp.InlayHint]:
    uri = params.text_document.uri
    records = ls.history.records(uri)
    if not records:
        return []
    lines = ls.workspace.get_text_document(uri).lines
    return present.inlay_hints(
        records, lines, ls.encoding, params.range.start.line, params.range.end.line
    )


@server.command(RUN)
async def run_command(ls: CodeexecServer, *args: Any) -> dict[str, Any]:
    uri, range_ = _parse_target(ls, args)
    result = await ls.run(uri, range_)
    return result.to_json()


@server.feature(lsp.SHUTDOWN)
async def shutdown(ls: CodeexecServer, params: None) -> None:
    # pygls bug #606: shutting down while a command runs breaks teardown; stop them first.
    ls.in_flight.cancel_all()
    for _ in range(50):
        if not len(ls.in_flight):
            break
        await asyncio.sleep(0.05)
    await ls.executor.close()
