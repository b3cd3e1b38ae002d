"""API keys never reach a log line, even with httpx/httpcore tracing every request."""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Iterator

import pytest

from codeexec_lsp.llm.base import ChatMessage, LlmAuthError
from codeexec_lsp.llm.factory import make_chat_model
from codeexec_lsp.redact import REDACTED, RedactingFilter, install_redaction, redact_text
from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import Answer, FakeLlmServer, Status, rate_limited

KEY_ENV = "CODEEXEC_CANARY_KEY"
# No key-like shape on purpose: only the environment lookup can catch it.
CANARY = "canary-7f3a9c2e5b1d"
MESSAGES = [ChatMessage("user", "hi")]
log = logging.getLogger("codeexec_lsp.test_redaction")


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, CANARY)
    return CANARY


@pytest.fixture
def redacted_caplog(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore inherit DEBUG from the root
    redacting = install_redaction(caplog.handler, [KEY_ENV])
    yield caplog
    caplog.handler.removeFilter(redacting)


def log_the_key_every_way(key: str) -> None:
    log.debug("key in the message: " + key)
    log.info("key as an argument: %s", key)
    log.info("key inside an object: %r", {"headers": {"x-api-key": key}})
    try:
        raise RuntimeError(f"request failed with key {key}")
    except RuntimeError:
        log.exception("key in the exception")
    log.warning("key in the stack", stack_info=True, extra={"note": "ok"})


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_canary_key_never_appears_in_logs(
    provider: str,
    fake_llm: FakeLlmServer,
    canary: str,
    redacted_caplog: pytest.LogCaptureFixture,
) -> None:
    base = fake_llm.openai_base_url if provider == "openai" else fake_llm.url
    model = make_chat_model(provider, base, "m", KEY_ENV, 5)
    fake_llm.script(rate_limited("0"), Answer("fine"))

    assert await model.complete(MESSAGES) == "fine"
    log_the_key_every_way(canary)

    sent = fake_llm.model_requests[-1].headers
    assert canary in sent.get("authorization", "") + sent.get("x-api-key", "")
    assert any(r.name.startswith("httpcore") for r in redacted_caplog.records), "no trace?"
    assert canary not in redacted_caplog.text
    for record in redacted_caplog.records:
        assert canary not in record.getMessage()
        assert canary not in (record.exc_text or "")
        assert canary not in (record.stack_info or "")
    assert REDACTED in redacted_caplog.text


async def test_key_echoed_by_the_server_is_not_in_the_error(
    fake_llm: FakeLlmServer, canary: str
) -> None:
    model = make_chat_model("openai", fake_llm.openai_base_url, "m", KEY_ENV, 5)
    fake_llm.script(Status(401, message=f"Incorrect API key provided: {canary}."))

    with pytest.raises(LlmAuthError) as caught:
        await model.complete(MESSAGES)

    assert canary not in str(caught.value)
    assert canary not in "".join(traceback.format_exception(caught.value))


def test_logger_install_covers_its_handlers_and_children(canary: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    parent = logging.getLogger("codeexec_lsp.test_redaction_parent")
    parent.addHandler(handler)
    parent.setLevel(logging.DEBUG)
    try:
        first = install_redaction(parent, [KEY_ENV])
        assert install_redaction(parent, ["OTHER"]) is first, "installing twice reuses it"
        # A child's records skip the parent's own filters but not its handlers'.
        logging.getLogger("codeexec_lsp.test_redaction_parent.child").info("k=%s", canary)
        parent.info("k=%s", canary)
    finally:
        parent.removeHandler(handler)

    assert canary not in stream.getvalue()
    assert stream.getvalue().count(f"k={REDACTED}") == 2
    assert first.env_names == {KEY_ENV, "OTHER"}


def test_value_is_read_when_filtering(monkeypatch: pytest.MonkeyPatch) -> None:
    redacting = RedactingFilter([KEY_ENV])
    monkeypatch.setenv(KEY_ENV, "set-after-install")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "k=%s", ("set-after-install",), None)

    assert redacting.filter(record)
    assert record.getMessage() == f"k={REDACTED}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123", f"Authorization: Bearer {REDACTED}"),
        ("x-api-key: zzz-secret-zzz", f"x-api-key: {REDACTED}"),
        ('{"api_key": "hunter2hunter2"}', f'{{"api_key": "{REDACTED}"}}'),
        ("(b'x-api-key', b'abcdefgh')", f"(b'x-api-key', b'{REDACTED}')"),
        ("key sk-proj-AbC123xyz789 leaked", f"key {REDACTED} leaked"),
        ("sk-ant-api03-AbC_123-xyz", REDACTED),
        ("nothing secret here: 42", "nothing secret here: 42"),
    ],
)
def test_generic_key_shapes(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_default_key_variables_are_always_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "plain-openai-value")

    assert redact_text("v=plain-openai-value") == f"v={REDACTED}"


def test_short_values_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "1")

    assert redact_text("line 1 of 10", [KEY_ENV]) == "line 1 of 10"
