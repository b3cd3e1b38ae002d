"""The language server: handlers translate between LSP messages and plain values.

Each handler turns LSP params into plain values, calls a use case in `actions/` and turns
its plain result into LSP messages: what a run keeps and tells (actions/run.after_run),
which code actions are offered (actions/code_actions), which hover answer wins
(actions/hover), the variables document (actions/variables), Explain, Fix and Show output
are all decided there, testable in process without an editor. What stays here is the LSP
side: documents and positions, progress, cancellation, showDocument, applyEdit, messages,
and the repairs to pygls in CodeexecProtocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import cattrs
from lsprotocol import types as lsp
from pygls.capabilities import get_capability
from pygls.constants import ATTR_EXECUTE_IN_THREAD
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from codeexec_lsp import __version__, documents, early_session, present, present_outputs, snippet
from codeexec_lsp.actions import code_actions
from codeexec_lsp.actions.code_actions import (  # noqa: F401 (KIND_*: read by tests/editors)
    APPLY_FIX,
    EXPLAIN,
    FIX,
    KIND_EXPLAIN,
    KIND_FIX,
    KIND_RESTART,
    KIND_RUN,
    KIND_RUN_FILE,
    RESTART,
    RUN,
    SHOW_OUTPUT,
)
from codeexec_lsp.actions.hover import hover as hover_action
from codeexec_lsp.actions.run import (
    after_run,
    build_request,
    run_snippet,
    throwaway_runner,
    usable_settings,
    warm_request,
    workspace_for,
)
from codeexec_lsp.actions.show_output import NothingToShow, PageNotWritten, write_output_page
from codeexec_lsp.actions.variables import (
    Place,
    VariablesAnswer,
    complete,
    list_variables,
    listed_where,
    session_place,
    variables_document,
)
from codeexec_lsp.cache import TextCache, user_cache_dir
from codeexec_lsp.config import Settings, SettingsStore, section_of
from codeexec_lsp.execution.live import LiveOutput
from codeexec_lsp.execution.registry import Executors
from codeexec_lsp.inflight import Cancelled, InFlightRuns, until_cancelled
from codeexec_lsp.logs import watch_secret_names
from codeexec_lsp.positions import from_client, to_client
from codeexec_lsp.results import RunResult
from codeexec_lsp.run_history import ExplanationHistory, ExplanationRecord, RunHistory, RunRecord
from codeexec_lsp.variables import Completion

if TYPE_CHECKING:  # explain/fix and the LLM side load on first use, not at start-up
    from codeexec_lsp.actions.fix import FixOutcome
    from codeexec_lsp.code_context import DiagnosticInfo
    from codeexec_lsp.llm.base import ChatModel

log = logging.getLogger(__name__)

VARIABLES = "codeexec.variables"
# Completion asks the session about `name.` / `name[` / `name["` / `name['`.
COMPLETION_TRIGGERS = [".", "[", '"', "'"]
REQUEST_FAILED = -32803  # LSP's RequestFailed: a valid request whose work failed
PARSE_ERROR, INVALID_REQUEST = -32700, -32600  # JSON-RPC: not JSON / not a message
UINTEGER_MAX = 2**31 - 1  # LSP positions are uintegers; lsprotocol refuses larger ones
PYTHON_LANGUAGE_IDS = {"python"}
PYTHON_SUFFIXES = (".py", ".pyw", ".pyi", ".ipy")
# The actions say how loud a message is in plain words; the client hears MessageType.
LEVELS = {
    "error": lsp.MessageType.Error,
    "warning": lsp.MessageType.Warning,
    "info": lsp.MessageType.Info,
}


def _is_request(data: Any) -> bool:
    return isinstance(data, dict) and "method" in data and "id" in data


def _answerable_id(data: dict[str, Any]) -> int | str | None:
    # JSON-RPC ids are numbers or strings; anything else is answered with a null id.
    msg_id = data.get("id")
    return msg_id if isinstance(msg_id, int | str) and not isinstance(msg_id, bool) else None


def _why_invalid(error: Exception) -> str:
    cause = error.__cause__
    if isinstance(cause, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(cause))[:500]
    return str(error) or type(error).__name__


@functools.cache
def _takes_raw_arguments(handler: Callable[..., Any]) -> bool:
    """Whether a command handler is `(ls, *args)` (pygls binds `ls` with a partial)."""
    function = getattr(handler, "func", handler)
    parameters = list(inspect.signature(function).parameters.values())
    return (
        len(parameters) == 2
        and parameters[0].name == "ls"
        and parameters[1].kind is inspect.Parameter.VAR_POSITIONAL
    )


class CodeexecProtocol(LanguageServerProtocol):
    """pygls' protocol with two repairs.

    A request whose params do not fit the LSP types (a negative line, a string for a
    position) is answered with InvalidParams: pygls only logs it, so the client would wait
    for an answer forever. And the future of every async sub-handler (each executeCommand,
    each async notification) is dropped once done: pygls keeps them, with their results,
    for the life of the server (one per command and one per notification such as didOpen).
    """

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            if _is_request(data):
                method = str(data.get("method"))[:100]
                self.answer_error(
                    _answerable_id(data),
                    JsonRpcInvalidParams.CODE,
                    f"invalid params for {method}: {_why_invalid(error)}",
                )
            raise

    def answer_error(self, msg_id: int | str | None, code: int, message: str) -> None:
        # A plain dict: the converter would drop a null id, and JSON-RPC requires the key.
        error = {"code": code, "message": message}
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": error})

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Any,
        callback: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        # Not for thread-pool handlers: their callbacks run off the event loop's thread.
        if future is not None and not getattr(handler, ATTR_EXECUTE_IN_THREAD, False):
            future.add_done_callback(functools.partial(self._forget, msg_id))

    def _handle_response(
        self, msg_id: Any, result: Any | None = None, error: Any | None = None
    ) -> None:
        """A client's late answer to a request we stopped waiting for (a run's progress
        create after the run ended, anything in flight at shutdown) is no error: pygls would
        set a result on the cancelled future and log an InvalidStateError traceback."""
        future = self._request_futures.get(msg_id)
        if future is not None and future.done():
            self._request_futures.pop(msg_id, None)
            return
        super()._handle_response(msg_id, result, error)

    _shutdown_started = False

    @lsp_method(lsp.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        self._shutdown_started = True
        return (yield from super().lsp_shutdown(*args))

    @lsp_method(lsp.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        """Exit once a shutdown still under way has finished. The event-loop stdin reader
        hands over messages as fast as they come, so a client that writes `exit` right
        behind `shutdown` (without waiting for its answer) would otherwise stop us halfway
        through shutting down: the wrong exit status and tracebacks from cut-off tasks."""
        if self._shutdown_started and not self._shutdown:
            yield self._until_shut_down, (), None
        return (yield from super().lsp_exit(*args))

    async def _until_shut_down(self) -> None:
        for _ in range(400):  # what the shutdown handler may take at most, and some
            if self._shutdown:
                return
            await asyncio.sleep(0.025)

    @lsp_method(lsp.WORKSPACE_EXECUTE_COMMAND)
    def lsp_workspace__execute_command(
        self, params: lsp.ExecuteCommandParams
    ) -> Generator[Any, Any, Any]:
        """Our commands take `(ls, *args)`: hand them the arguments as sent. pygls would
        call `typing.get_type_hints` and `inspect.signature` on the handler for every call
        (a sizeable part of a fast run's round trip) only to pass them on unchanged."""
        handler = self.fm.commands.get(params.command)
        if handler is None or not _takes_raw_arguments(handler):
            return (yield from super().lsp_workspace__execute_command(params))
        return (yield handler, tuple(params.arguments or ()), None)

    def _send_response(
        self, msg_id: Any, result: Any | None = None, error: Any | None = None
    ) -> None:
        # Our commands answer plain JSON dicts: send them as they are, instead of wrapping
        # them in an lsprotocol response that cattrs then unstructures key by key.
        if error is None and isinstance(result, dict):
            self._result_types.pop(msg_id, None)
            self._send_data({"jsonrpc": "2.0", "id": msg_id, "result": result})
            return
        super()._send_response(msg_id, result, error)

    def _forget(self, msg_id: Any, future: Any) -> None:
        # Later, not now: a concurrent Future runs this as soon as it is cancelled, and
        # pygls' shutdown cancels futures while it iterates over this very dict.
        asyncio.get_running_loop().call_soon(self._drop, msg_id, future)

    def _drop(self, msg_id: Any, future: Any) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]


class CodeexecServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("codeexec-lsp", __version__, protocol_cls=CodeexecProtocol)
        self.settings_store = SettingsStore()
        self.settings = Settings()
        self.history = RunHistory()
        self.in_flight = InFlightRuns()
        # Runs still going, by the same key as in_flight: (label, what they showed so far),
        # for progress reports and Show output before the run ends.
        self.live_runs: dict[tuple[str, int, int], tuple[str, LiveOutput]] = {}
        self.executors = Executors()
        self.explanations = ExplanationHistory()
        self.explain_cache = TextCache(user_cache_dir() / "explanations")
        self.pending_fixes: dict[str, tuple[int | None, FixOutcome]] = {}
        self.client_name: str | None = None
        self._warned: set[str] = set()
        # What the client was last told per document: (diagnostics, inlay hints).
        self.published: dict[str, tuple[list[lsp.Diagnostic], list[lsp.InlayHint]]] = {}

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls' read loop calls this directly: an exception escaping it would end the server.
        with contextlib.suppress(Exception):
            self._report(error, source)

    def _report(self, error: Exception, source: Any) -> None:
        if isinstance(error, JsonRpcException):
            # Deliberate error replies (bad arguments, a model failure already shown), or
            # params that did not fit the LSP types (already answered by the protocol).
            log.debug("request answered with an error: %s", error)
            return
        if source is JsonRpcException:
            # The read loop: the client sent something that is not a usable JSON-RPC message.
            # Nothing the user can act on. JSON-RPC answers bytes that are not JSON (a
            # ValueError) or JSON that is not a message object (pygls then fails on a missing
            # attribute) with a null id.
            log.warning("malformed message from the client: %s: %s", type(error).__name__, error)
            codes = {ValueError: PARSE_ERROR, AttributeError: INVALID_REQUEST}
            code = next((c for kind, c in codes.items() if isinstance(error, kind)), None)
            protocol = self.protocol
            if code is not None and isinstance(protocol, CodeexecProtocol):
                protocol.answer_error(None, code, f"malformed message: {type(error).__name__}")
            return
        log.exception("codeexec-lsp internal error", exc_info=error)
        self.tell(
            lsp.MessageType.Error,
            f"the server hit an internal error ({type(error).__name__}: {error}). "
            "It keeps running; details are in its log.",
        )

    def tell(self, kind: lsp.MessageType, message: str) -> None:
        """Everything the user is told goes through here, by one policy:

        - One prefix, `codeexec: `, so the user knows which of their servers speaks (a text
          that already names us as `codeexec …` is brought to that form).
        - Error: what the user asked for failed and nothing was done; say why and what to do.
          Warning: done, but not as asked (a setting not used, a session's state lost, a fix
          not verified). Info: a result only a message can carry (a restart, a page's path).
        - Never for routine success: a run that went fine tells nothing (its result shows on
          hover, inlay hints and diagnostics).
        - Each message also goes to window/logMessage, so it is still in the editor's log
          after the pop-up is gone.
        """
        text = message
        if text.startswith("codeexec ") and not text.startswith("codeexec: "):
            text = text.removeprefix("codeexec ")
        if not text.startswith("codeexec: "):
            text = f"codeexec: {text}"
        self.window_show_message(lsp.ShowMessageParams(type=kind, message=text))
        self.window_log_message(lsp.LogMessageParams(type=kind, message=text))

    # --- plumbing the handlers share ------------------------------------------------------

    @property
    def encoding(self) -> str:
        return str(self.workspace.position_encoding or lsp.PositionEncodingKind.Utf16)

    def supports(self, path: str) -> bool:
        """Whether the client announced the boolean capability at `path`, read with pygls'
        get_capability and an explicit default. Always name the boolean leaf: an object such
        as `window.show_document` is truthy even when its `support` is false."""
        return get_capability(self.client_capabilities, path, False) is True

    @property
    def image_style(self) -> present_outputs.ImageStyle:
        """Whether hover may carry images, for this client and the hoverImages setting."""
        parser = get_capability(self.client_capabilities, "general.markdown.parser", None)
        return present_outputs.hover_image_style(
            parser, self.client_name, self.settings.hover_images
        )

    def load_settings(self) -> list[str]:
        """Re-read the settings layers; the warnings for values that were not usable."""
        settings, warnings = self.settings_store.current()
        self.settings, clamped = usable_settings(settings)
        return [*warnings, *clamped]

    def apply_settings(self) -> None:
        warnings = self.load_settings()
        watch_secret_names(self.settings.secret_env_names)
        for warning in warnings:
            if warning not in self._warned:
                self.tell(lsp.MessageType.Warning, warning)
        # Only the current warnings: a client pushing ever-different bad values must not
        # grow this set, and a problem that comes back is worth saying again.
        self._warned = set(warnings)

    async def pull_settings(self) -> None:
        if not self.supports("workspace.configuration"):
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

    def is_open(self, uri: str) -> bool:
        # pygls keys its documents by the unquoted URI.
        return unquote(uri) in self.workspace.text_documents

    def document(self, uri: str) -> TextDocument:
        """The editor's copy of `uri`; a file: URI the editor has not opened is read from
        disk (regular files only, see snippet.read_source_file). Anything else is refused:
        pygls would map e.g. `untitled:/etc/passwd` or `http://host/x.py` to a local path."""
        if self.is_open(uri):
            return self.workspace.get_text_document(uri)
        path = to_fs_path(uri) if uri[:5].lower() == "file:" else None
        if not path:
            raise JsonRpcInvalidParams(f"{uri[:200]} is not open in the editor: open it first")
        try:
            text = snippet.read_source_file(path)
        except snippet.SnippetError as exc:
            raise JsonRpcInvalidParams(f"cannot read {uri[:200]}: {exc}") from exc
        return TextDocument(uri, source=text, position_codec=self.workspace.position_codec)

    def workspace_folders(self) -> list[str]:
        folders = [to_fs_path(folder.uri) for folder in self.workspace.folders.values()]
        return [folder for folder in [*folders, self.workspace.root_path] if folder]

    def publish(self, uri: str) -> None:
        """Tell the client about `uri`'s run results, only what changed since last time: an
        unchanged publishDiagnostics is a message (and a redraw) for nothing, and an inlay
        hint refresh makes the client ask for every visible document's hints again."""
        document = self.workspace.get_text_document(uri)
        records = self.history.records(uri)
        found = present.diagnostics(
            uri,
            records,
            document.lines,
            self.encoding,
            related_information=bool(
                self.supports("text_document.publish_diagnostics.related_information")
            ),
        )
        hints = present.inlay_hints(records, document.lines, self.encoding, 0, UINTEGER_MAX)
        shown_diagnostics, shown_hints = self.published.get(uri, ([], []))
        self.published[uri] = (found, hints)
        if found != shown_diagnostics:
            self.text_document_publish_diagnostics(
                lsp.PublishDiagnosticsParams(uri=uri, diagnostics=found, version=document.version)
            )
        if hints != shown_hints and self.supports("workspace.inlay_hint.refresh_support"):
            self.workspace_inlay_hint_refresh(None)

    def forget_published(self, uri: str) -> None:
        """`uri` was closed: the client dropped what we showed for it."""
        self.published.pop(uri, None)

    # --- running ------------------------------------------------------------------------

    def snippet_for(self, document: TextDocument, range_: lsp.Range | None) -> snippet.Snippet:
        """The code `range_` means; a range that holds no code is refused with InvalidParams."""
        try:
            return self._snippet_for(document, range_)
        except snippet.SnippetError as exc:
            self.tell(lsp.MessageType.Warning, str(exc))
            raise JsonRpcInvalidParams(str(exc)) from exc

    def _snippet_for(self, document: TextDocument, range_: lsp.Range | None) -> snippet.Snippet:
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
        """Run the code `range_` means: here the LSP side (snippet, progress, cancellation,
        publishing); actions/run.after_run says what the user is told and what is kept."""
        await settings_pulled()  # one client round trip, and only for a run sent that early
        document = self.document(uri)
        code = self.snippet_for(document, range_)
        request = build_request(
            code, self.settings, workspace_for(code.path, self.workspace_folders())
        )
        key = (uri, code.first_line, code.last_line)
        span = slice(code.first_line, code.last_line + 1)
        lines_before = document.lines[span]
        label = code.describe()
        live = LiveOutput()
        request = dataclasses.replace(request, live=live)
        cancel = self.in_flight.start(key)
        self.live_runs[key] = (label, live)
        try:
            async with self.work_progress(f"Running {label}", cancel, live) as report:
                report(f"{request.python}")
                executor = self.executors.for_settings(self.settings)
                result = await run_snippet(executor, request, cancel)
        finally:
            self.in_flight.finish(key, cancel)
            if self.live_runs.get(key, (None, None))[1] is live:
                self.live_runs.pop(key, None)
        still_open = self.is_open(uri)
        lines_now = self.workspace.get_text_document(uri).lines[span] if still_open else None
        after = after_run(result, lines_before, lines_now)
        if after.notice is not None:
            self.tell(LEVELS[after.notice.level], after.notice.message)
        if after.record:
            self.history.add(
                uri, RunRecord(code.first_line, code.last_line, result, label, code.path)
            )
            self.publish(uri)
        return result

    async def warm_session(self) -> tuple[str, str] | None:
        """Start the session worker (or Jupyter kernel) now, so the first run is as fast as
        the others; the (cwd, profile) of the session it started."""
        request = warm_request(self.settings, self.workspace_folders())
        if request is None:
            return None
        if self.settings.executor == "jupyter":
            await self.executors.jupyter(self.settings).warm(request)
            return None
        await self.executors.session.warm_for(request)
        return (request.cwd, request.sandbox)

    async def restart_session(self) -> dict[str, Any]:
        restarted = await self.executors.session.restart()
        restarted += await self.executors.restart_jupyter()
        message = (
            f"codeexec: restarted {restarted} session(s); their variables and imports are gone."
            if restarted
            else "codeexec: no session was running; the next run starts a fresh one."
        )
        self.tell(lsp.MessageType.Info, message)
        return {"restarted": restarted, "message": message}

    # --- explain and fix ------------------------------------------------------------------

    def chat_model(self) -> ChatModel:
        from codeexec_lsp.llm.factory import make_chat_model  # httpx: import on use

        llm = self.settings.llm
        return make_chat_model(llm.provider, llm.base_url, llm.model, llm.api_key_env, llm.timeout)

    def llm_failed(self, what: str, error: Exception) -> JsonRpcException:
        message = f"codeexec {what}: {error}"
        self.tell(lsp.MessageType.Error, message)
        return JsonRpcException(message, code=REQUEST_FAILED)

    async def explain(self, uri: str, range_: lsp.Range | None) -> dict[str, Any]:
        """Explain with LLM: actions/explain.py builds the grounded context and writes the
        document; here the LSP side (snippet, progress, cancellation, showDocument)."""
        from codeexec_lsp.actions.explain import check_not_excluded, explain_snippet
        from codeexec_lsp.llm.base import LlmError

        document = self.document(uri)
        code = self.snippet_for(document, range_)
        key = ("explain", uri, code.first_line, code.last_line)
        cancel = self.in_flight.start(key)
        try:
            check_not_excluded(code.path, self.settings.llm.exclude)
            model = self.chat_model()
            async with self.work_progress(f"Explaining {code.describe()}", cancel) as report:
                result = await until_cancelled(
                    explain_snippet(
                        model, document.source, code, self.history, uri, self.explain_cache, report
                    ),
                    cancel,
                )
        except LlmError as exc:
            raise self.llm_failed("Explain", exc) from exc
        except Cancelled:
            return {"markdown": "", "cancelled": True}
        finally:
            self.in_flight.finish(key, cancel)
        if self.is_open(uri):
            self.explanations.add(
                uri, ExplanationRecord(code.first_line, code.last_line, result.markdown)
            )
        await self.show_explanation(code, result.markdown)
        return {"markdown": result.markdown, "cached": result.cached}

    async def show_explanation(self, code: snippet.Snippet, markdown: str) -> None:
        from codeexec_lsp.actions.explain import explanation_document

        if not self.supports("window.show_document.support"):
            return
        try:
            target = explanation_document(
                user_cache_dir() / "explanations" / "documents", code, markdown
            )
            await self.window_show_document_async(
                lsp.ShowDocumentParams(uri=target.as_uri(), take_focus=True)
            )
        except Exception as exc:  # the hover still shows it; say why the document did not open
            log.warning("could not show the explanation document: %s", exc)

    async def show_output(self, uri: str, range_: lsp.Range | None) -> dict[str, Any]:
        """Write the run's output page (actions/show_output.py chooses the run and keeps a
        going run's page current) and ask the client to open it in the browser."""
        span = (range_.start.line, range_.end.line) if range_ is not None else None
        try:
            page = write_output_page(
                uri,
                span,
                to_fs_path(uri) or unquote(uri),
                self.live_runs,
                self.history,
                user_cache_dir() / "outputs",
            )
        except NothingToShow as exc:
            raise JsonRpcException(str(exc), code=REQUEST_FAILED) from exc
        except PageNotWritten as exc:
            self.tell(lsp.MessageType.Error, str(exc))
            raise JsonRpcException(str(exc), code=REQUEST_FAILED) from exc
        page_uri = page.path.as_uri()
        shown = False
        if self.supports("window.show_document.support"):
            try:
                answer = await self.window_show_document_async(
                    lsp.ShowDocumentParams(uri=page_uri, external=True)
                )
                shown = bool(answer and answer.success)
            except Exception as exc:  # the page is written; say where it is instead
                log.warning("window/showDocument failed: %s", exc)
        if not shown:
            self.tell(
                lsp.MessageType.Info, f"the output page is {page.path} (open it in a browser)."
            )
        return {"uri": page_uri, "shown": shown}

    async def fix(
        self, uri: str, range_: lsp.Range | None, diagnostic: DiagnosticInfo | None
    ) -> dict[str, Any]:
        """Fix with LLM: actions/fix_session.py chooses the target, builds the request and
        says what to tell; here the LSP side (document, progress, cancellation, the edit)."""
        from codeexec_lsp.actions import fix_session
        from codeexec_lsp.actions.explain import check_not_excluded
        from codeexec_lsp.actions.fix import fix
        from codeexec_lsp.llm.base import LlmError

        if not self.is_open(uri):
            # The fix is applied as a versioned edit, which needs the editor's open copy.
            raise JsonRpcInvalidParams(f"{uri[:200]} is not open in the editor: open it first")
        document = self.document(uri)
        version, text, lines = document.version, document.source, list(document.lines)

        def selected_lines() -> tuple[int, int]:
            code = self.snippet_for(document, range_)
            return code.first_line, code.last_line

        try:
            target = fix_session.choose_target(
                len(lines),
                (range_.start.line, range_.end.line) if range_ is not None else None,
                range_ is not None and range_.start == range_.end,
                diagnostic,
                selected_lines,
            )
        except fix_session.TargetOutside as exc:
            raise JsonRpcInvalidParams(str(exc)) from exc
        path = self.document_path(document)
        request = fix_session.fix_request(
            uri, text, path, target, diagnostic, self.history, self.settings
        )
        key = ("fix", uri)
        cancel = self.in_flight.start(key)
        run_lines = fix_session.untrusted_lines_runner(
            path,
            self.settings,
            workspace_for(path, self.workspace_folders()),
            throwaway_runner(self.executors, cancel),
        )
        try:
            check_not_excluded(path, self.settings.llm.exclude)
            model = self.chat_model()
            async with self.work_progress("Fix with LLM", cancel):
                outcome = await until_cancelled(fix(model, request, run_lines), cancel)
        except LlmError as exc:
            raise self.llm_failed("Fix", exc) from exc
        except Cancelled:
            return dict(fix_session.CANCELLED)
        finally:
            self.in_flight.finish(key, cancel)
        applied: bool | None = None
        refusal = ""
        if outcome.should_apply:
            applied, refusal = await self.apply_fix_edit(uri, version, lines, outcome)
        report = fix_session.report(outcome, applied, refusal, self.is_open(uri))
        if report.keep_pending:
            self.pending_fixes[uri] = (version, outcome)
        self.tell(LEVELS[report.level], report.message)
        return report.answer

    async def apply_fix_edit(
        self, uri: str, version: int | None, lines: list[str], outcome: FixOutcome
    ) -> tuple[bool, str]:
        """Apply as one versioned edit; (applied, why not) — a stale document is refused."""
        from codeexec_lsp.actions import fix_session
        from codeexec_lsp.edits import EditOutsideTarget, to_workspace_edit

        current = self.workspace.get_text_document(uri).version
        if not fix_session.still_applicable(current, version, outcome) or outcome.target is None:
            return False, fix_session.STALE
        try:
            edit = to_workspace_edit(
                uri,
                version or 0,
                lines,
                outcome.edits,
                allowed_span=(outcome.target.start_line, outcome.target.end_line + 1),
                position_encoding=self.encoding,
            )
        except EditOutsideTarget as exc:
            return False, f"The fix was refused and nothing was changed: {exc}."
        if not self.supports("workspace.workspace_edit.document_changes"):
            changes = [e for c in edit.document_changes or [] for e in getattr(c, "edits", [])]
            edit = lsp.WorkspaceEdit(changes={uri: changes})
        try:
            response = await self.workspace_apply_edit_async(
                lsp.ApplyWorkspaceEditParams(edit=edit, label="Fix with LLM")
            )
        except Exception as exc:
            return False, f"The editor could not apply the fix ({exc}); nothing was changed."
        if not response.applied:
            return False, fix_session.editor_refused(response.failure_reason)
        self.pending_fixes.pop(uri, None)
        return True, ""

    @contextlib.asynccontextmanager
    async def work_progress(
        self, title: str, cancel: asyncio.Event, live: LiveOutput | None = None
    ) -> AsyncIterator[Callable[[str], None]]:
        """Cancellable work-done progress for work still going after PROGRESS_DELAY_S.

        Work that ends sooner sends nothing at all: `window/workDoneProgress/create` is a
        request the client must answer before `begin` may go out, so eager progress costs a
        fast run three messages and a round trip for a spinner nobody sees. Reports made
        before then are kept and the latest becomes `begin`'s message; `end` goes out only
        after `begin`. With `live` (a run's output so far) it reports at least once a
        second: the seconds elapsed and the run's last output line, or what it waits for.
        """
        if not self.supports("window.work_done_progress"):
            yield lambda message: None
            return
        progress = _LazyProgress(self, title, cancel, live)
        shown = asyncio.create_task(progress.show())
        try:
            yield progress.report
        finally:
            # Cancelled before it ran its next step, so nothing more is sent after `end`.
            shown.cancel()
            progress.end()


PROGRESS_DELAY_S = 0.15  # a run shorter than this shows no progress at all
PROGRESS_EVERY_S = 1.0  # a long run reports at least this often
PROGRESS_LINE_CHARS = 200  # the part of a run's last output line a report shows


class _LazyProgress:
    """One work-done progress that the editor hears of only once the work has lasted
    PROGRESS_DELAY_S (see CodeexecServer.work_progress)."""

    def __init__(
        self, server: CodeexecServer, title: str, cancel: asyncio.Event, live: LiveOutput | None
    ) -> None:
        self.server, self.title, self.cancel, self.live = server, title, cancel, live
        self.token: str | None = None
        self.begun = self.ended = False
        self.pending: str | None = None  # the latest report made before `begin`

    def report(self, message: str) -> None:
        if self.ended:
            return
        if not self.begun or self.token is None:
            self.pending = message
            return
        progress = self.server.work_done_progress
        progress.report(self.token, lsp.WorkDoneProgressReport(message=message))

    def live_message(self) -> str | None:
        """`12 s · epoch 3/10 loss 0.41`, or `3 s · waiting for the run at lines 10–20`."""
        live = self.live
        if live is None:
            return self.pending
        seconds = f"{int(live.elapsed())} s"
        if live.waiting_for:
            return f"{seconds} · waiting for {live.waiting_for}"
        detail = live.last_line()[-PROGRESS_LINE_CHARS:] or self.pending
        return f"{seconds} · {detail}" if detail else seconds

    async def show(self) -> None:
        await asyncio.sleep(PROGRESS_DELAY_S)
        progress = self.server.work_done_progress
        token = f"codeexec-{uuid.uuid4()}"
        try:
            await progress.create_async(token)
        except asyncio.CancelledError:
            progress.tokens.pop(token, None)
            raise
        except Exception as exc:  # a client refusing progress still gets its result
            log.info("window/workDoneProgress/create refused: %s", exc)
            return
        self.token = token
        loop = asyncio.get_running_loop()
        cancelled = progress.tokens.get(token)
        if cancelled is not None:
            cancel = self.cancel
            cancelled.add_done_callback(
                lambda done: loop.call_soon_threadsafe(cancel.set) if done.cancelled() else None
            )
        progress.begin(
            token,
            lsp.WorkDoneProgressBegin(
                title=self.title, cancellable=True, message=self.live_message()
            ),
        )
        self.begun = True
        if self.live is None:
            return
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            message = self.live_message()
            if message:
                self.report(message)

    def end(self) -> None:
        if self.begun and not self.ended and self.token is not None:
            message = "cancelled" if self.cancel.is_set() else "done"
            progress = self.server.work_done_progress
            progress.end(self.token, lsp.WorkDoneProgressEnd(message=message))
            progress.tokens.pop(self.token, None)
        self.ended = True


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
    # Past the end of the document is clamped later; past what LSP can express is the same.
    line_0, char_0, line_1, char_1 = (min(n, UINTEGER_MAX) for n in numbers)
    return lsp.Range(
        start=lsp.Position(line=line_0, character=char_0),
        end=lsp.Position(line=line_1, character=char_1),
    )


def _parse_target(
    args: tuple[Any, ...], command: str = RUN, signature: str = "[uri, range?]"
) -> tuple[str, lsp.Range | None]:
    """The `[uri, range?]` arguments; whether the URI can be read is the handler's check."""
    most = signature.count(",") + 1
    if not args or not isinstance(args[0], str) or not args[0] or len(args) > most:
        raise JsonRpcInvalidParams(f"{command} takes {signature}")
    return args[0], _parse_range(args[1] if len(args) > 1 else None)


# Work started by a handler that must outlive it (a task nobody holds may be collected).
_background: set[asyncio.Future[Any]] = set()
# The session started at `initialize`, from initializationOptions alone: (cwd, profile).
_early_session: list[tuple[str, str] | None] = [None]
_early_start: list[asyncio.Future[None] | None] = [None]
# Set once `initialized` has pulled the client's settings (workspace/configuration).
_settings_pulled = asyncio.Event()
SETTINGS_WAIT_S = 5.0


async def settings_pulled() -> None:
    """Wait (bounded) until the client's own settings are in: a run sent right after
    `initialized` must not use initializationOptions alone (say, the standard box where the
    workspace configuration asks for strict). A client that never sends `initialized`
    costs its first run SETTINGS_WAIT_S."""
    if not _settings_pulled.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_settings_pulled.wait(), SETTINGS_WAIT_S)


async def _warm_early(ls: CodeexecServer) -> None:
    try:
        _early_session[0] = await ls.warm_session()
    except Exception as exc:  # the first run starts it instead, and says why it could not
        log.info("could not start the session early: %s", exc)


@server.feature(lsp.INITIALIZE)
def initialize(ls: CodeexecServer, params: lsp.InitializeParams) -> None:
    ls.client_name = params.client_info.name if params.client_info else None
    section = section_of(params.initialization_options)
    ls.settings_store.initialization = dict(section) if section else {}
    ls.load_settings()  # the warnings are shown once the client is initialized
    documents.cache_lines(ls.workspace)
    # The worker's interpreter takes as long to start as `python -c pass`: begin now, from
    # initializationOptions and the root folder, so the first run right after `initialized`
    # finds it (nearly) ready. `initialized` replaces it if the pulled settings differ.
    task = asyncio.ensure_future(_warm_early(ls))
    _background.add(task)
    task.add_done_callback(_background.discard)
    _early_start[0] = task


@server.feature(lsp.INITIALIZED)
async def initialized(ls: CodeexecServer, params: lsp.InitializedParams) -> None:
    try:
        await ls.pull_settings()
        ls.apply_settings()
    finally:
        _settings_pulled.set()
    key = await ls.warm_session()
    starting, _early_start[0] = _early_start[0], None
    if starting is not None:
        await starting  # it says which session it started only once that one is ready
    early, _early_session[0] = _early_session[0], None
    # Started at `initialize`, or before it from the raw message (early_session.py).
    started = {*([early] if early is not None else []), *early_session.started}
    early_session.started.clear()
    for cwd, profile in started - {key}:
        # The client's configuration moved the session (another sandbox or folder).
        await ls.executors.session.stop_if_unused(cwd, profile)  # type: ignore[arg-type]


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
    await ls.warm_session()


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CodeexecServer, params: lsp.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    changed = False
    for change in params.content_changes:
        if isinstance(change, lsp.TextDocumentContentChangePartial):
            start, end = change.range.start, change.range.end
            changed |= ls.history.edit(uri, start.line, start.character, end.line, change.text)
            ls.explanations.edit(uri, start.line, start.character, end.line, change.text)
        else:
            changed |= ls.history.forget(uri)
            ls.explanations.forget(uri)
    if changed:
        ls.publish(uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: CodeexecServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.in_flight.cancel_where(lambda key: uri in key)
    ls.explanations.forget(uri)
    ls.pending_fixes.pop(uri, None)
    ls.forget_published(uri)
    if ls.history.forget(uri):
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


def _diagnostic_json(diagnostic: lsp.Diagnostic) -> dict[str, Any]:
    return {
        "range": _range_json(diagnostic.range),
        "message": diagnostic.message,
        "source": diagnostic.source,
        "code": diagnostic.code,
    }


def _code_action(offer: code_actions.Offer, sent: Sequence[lsp.Diagnostic]) -> lsp.CodeAction:
    title = offer.title
    command = lsp.Command(title=title, command=offer.command, arguments=offer.arguments)
    action = lsp.CodeAction(title=title, kind=offer.kind, command=command)
    if offer.diagnostic is not None:
        action.diagnostics = [sent[offer.diagnostic]]
    return action


@server.feature(
    lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(code_action_kinds=code_actions.KINDS)
)
def code_action(ls: CodeexecServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    """Listing is instant: nothing runs and no model is called until an action is picked
    (actions/code_actions.py decides which are offered where)."""
    try:
        document = ls.document(params.text_document.uri)
    except JsonRpcInvalidParams:
        return []  # nothing we can read, so nothing we could run
    if not _is_python(document):
        return []
    uri, sent = document.uri, params.context.diagnostics
    hint = lsp.DiagnosticSeverity.Hint
    diagnostics = [code_actions.Diagnostic(_diagnostic_json(d), d.severity == hint) for d in sent]
    offers = code_actions.offers(
        uri,
        document.source,
        _range_json(params.range),
        diagnostics,
        version=document.version,
        pending_fix=ls.pending_fixes.get(uri),
        going=ls.live_runs,
        history=ls.history,
        executor=ls.settings.executor,
        only=params.context.only,
    )
    return [_code_action(offer, sent) for offer in offers]


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
async def hover(ls: CodeexecServer, params: lsp.HoverParams) -> lsp.Hover | None:
    """A run's result, an explanation or a live value: actions/hover.py chooses."""
    uri, position = params.text_document.uri, params.position

    def python_line() -> tuple[str, Place | None] | None:
        found = _python_line(ls, uri, position.line)
        return None if found is None else (found[1], _session_place(ls, found[0]))

    shown = await hover_action(
        uri,
        position.line,
        position.character,
        ls.encoding,
        history=ls.history,
        explanations=ls.explanations,
        going=ls.live_runs,
        image_style=ls.image_style,
        python_line=python_line,
    )
    if shown is None:
        return None
    contents = lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=shown.markdown)
    if shown.span is None:
        return lsp.Hover(contents=contents)
    start, end = (lsp.Position(line=position.line, character=c) for c in shown.span)
    return lsp.Hover(contents=contents, range=lsp.Range(start=start, end=end))


def _python_line(ls: CodeexecServer, uri: str, line: int) -> tuple[TextDocument, str] | None:
    """The document and the text of `line` (no line break), for Python documents only."""
    try:
        document = ls.document(uri)
    except JsonRpcInvalidParams:
        return None
    lines = document.lines
    if not _is_python(document) or not 0 <= line < len(lines):
        return None
    return document, lines[line].rstrip("\r\n")


def _session_place(ls: CodeexecServer, document: TextDocument | None) -> Place | None:
    """Where the variables a run of `document` would see live (actions/variables.py)."""
    path = ls.document_path(document) if document is not None else None
    return session_place(path, ls.settings, ls.workspace_folders(), ls.executors.for_settings)


_COMPLETION_KINDS = {
    "method": lsp.CompletionItemKind.Method,
    "property": lsp.CompletionItemKind.Property,
    "field": lsp.CompletionItemKind.Field,
    "module": lsp.CompletionItemKind.Module,
    "class": lsp.CompletionItemKind.Class,
    "key": lsp.CompletionItemKind.Value,
}


def _completion_item(
    item: Completion, replaced: lsp.Range, label_details: bool
) -> lsp.CompletionItem:
    """`detail` always says the item comes from the session; `labelDetails` too, for
    clients that announced they show it."""
    return lsp.CompletionItem(
        label=item.label,
        kind=_COMPLETION_KINDS[item.kind],
        detail=item.detail,
        label_details=lsp.CompletionItemLabelDetails(description="session")
        if label_details
        else None,
        filter_text=item.insert,
        text_edit=lsp.TextEdit(range=replaced, new_text=item.insert),
    )


@server.feature(
    lsp.TEXT_DOCUMENT_COMPLETION,
    lsp.CompletionOptions(trigger_characters=COMPLETION_TRIGGERS, resolve_provider=False),
)
async def completion(ls: CodeexecServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    """The live object's attributes after `name.`, its keys after `name[`/`name["`. A
    complete list (isIncomplete false), empty when the session has nothing to add, so
    other servers' items are never pushed aside or re-asked for on every key."""
    found = _python_line(ls, params.text_document.uri, params.position.line)
    if found is None:
        return lsp.CompletionList(is_incomplete=False, items=[])
    document, text = found
    column = from_client(text, params.position.character, ls.encoding)
    place = _session_place(ls, document)
    answer = await complete(place, text[:column])
    start = to_client(text, column - answer.replaces, ls.encoding)
    replaced = lsp.Range(
        start=lsp.Position(line=params.position.line, character=start),
        end=params.position,
    )
    details = ls.supports("text_document.completion.completion_item.label_details_support")
    items = [_completion_item(item, replaced, details) for item in answer.items]
    return lsp.CompletionList(is_incomplete=False, items=items)


@server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT)
def inlay_hint(ls: CodeexecServer, params: lsp.InlayHintParams) -> list[lsp.InlayHint]:
    uri = params.text_document.uri
    records = ls.history.records(uri)
    if not records:
        return []
    lines = ls.document(uri).lines
    return present.inlay_hints(
        records, lines, ls.encoding, params.range.start.line, params.range.end.line
    )


@server.command(RUN)
async def run_command(ls: CodeexecServer, *args: Any) -> dict[str, Any]:
    uri, range_ = _parse_target(args)
    result = await ls.run(uri, range_)
    return result.to_json()


def _parse_diagnostic(value: Any) -> DiagnosticInfo | None:
    from codeexec_lsp.code_context import DiagnosticInfo

    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("message"), str):
        raise JsonRpcInvalidParams("the diagnostic argument must be an LSP Diagnostic object")
    range_ = _parse_range(value.get("range"))
    code = value.get("code")
    return DiagnosticInfo(
        message=value["message"],
        line=range_.start.line if range_ else 0,
        source=value.get("source") if isinstance(value.get("source"), str) else None,
        code=str(code) if code is not None else None,
    )


@server.command(SHOW_OUTPUT)
async def show_output_command(ls: CodeexecServer, *args: Any) -> dict[str, Any]:
    uri, range_ = _parse_target(args, SHOW_OUTPUT)
    return await ls.show_output(uri, range_)


@server.command(VARIABLES)
async def variables_command(ls: CodeexecServer, *args: Any) -> dict[str, Any]:
    if len(args) > 1 or (args and not isinstance(args[0], str)):
        raise JsonRpcInvalidParams(f"{VARIABLES} takes [uri?]")
    document = ls.document(args[0]) if args else None
    place = _session_place(ls, document)
    answer = await list_variables(place, ls.settings.executor)
    result = answer.to_json()
    shown = await _show_variables(ls, listed_where(place), answer)
    if shown is not None:
        result["uri"] = shown
    return result


async def _show_variables(ls: CodeexecServer, where: str, answer: VariablesAnswer) -> str | None:
    """Open the list as a Markdown document, as Explain does; its URI, or None when the
    client cannot show documents or the file could not be written (the command's result
    still carries the list)."""
    if not ls.supports("window.show_document.support"):
        return None
    try:
        target = variables_document(user_cache_dir() / "variables", where, answer)
        await ls.window_show_document_async(
            lsp.ShowDocumentParams(uri=target.as_uri(), take_focus=True)
        )
    except Exception as exc:
        log.warning("could not show the variables document: %s", exc)
        return None
    return target.as_uri()


@server.command(RESTART)
async def restart_command(ls: CodeexecServer, *args: Any) -> dict[str, Any]:
    return await ls.restart_session()


@server.command(EXPLAIN)
async def explain_command(ls: CodeexecServer, *args: Any) -> dict[str, Any]:
    uri, range_ = _parse_target(args, EXPLAIN)
    return await ls.explain(uri, range_)


@server.command(FIX)
async def fix_command(ls: CodeexecServer, *args: Any) -> dict[str, Any]:
    uri, range_ = _parse_target(args, FIX, "[uri, range, diagnostic?]")
    return await ls.fix(uri, range_, _parse_diagnostic(args[2] if len(args) > 2 else None))


@server.command(APPLY_FIX)
async def apply_fix_command(ls: CodeexecServer, *args: Any) -> dict[str, Any]:
    uri, _ = _parse_target(args, APPLY_FIX, "[uri]")
    pending = ls.pending_fixes.get(uri)
    if pending is None:
        return {"applied": False, "message": "No unverified fix is waiting for this file."}
    version, outcome = pending
    lines = list(ls.workspace.get_text_document(uri).lines)
    applied, refusal = await ls.apply_fix_edit(uri, version, lines, outcome)
    message = "Applied the unverified fix." if applied else refusal
    return {"applied": applied, "verified": False, "attempts": outcome.attempts, "message": message}


@server.feature(lsp.SHUTDOWN)
async def shutdown(ls: CodeexecServer, params: None) -> None:
    # pygls bug #606: shutting down while a command runs breaks teardown; stop them first.
    ls.in_flight.cancel_all()
    for _ in range(50):
        if not len(ls.in_flight):
            break
        await asyncio.sleep(0.05)
    await ls.executors.close()
