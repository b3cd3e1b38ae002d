from __future__ import annotations

from codeexec_lsp.config import Settings, SettingsStore, parse_settings, section_of


def test_defaults() -> None:
    settings, warnings = parse_settings({})
    assert settings == Settings() and warnings == []
    assert (settings.timeout, settings.memory_mb, settings.max_output_bytes) == (
        30.0,
        1024,
        1_000_000,
    )


def test_nested_keys_as_vscode_sends_them() -> None:
    settings, warnings = parse_settings(
        {"timeout": 5, "memoryMb": 256, "llm": {"model": "m", "baseUrl": "http://x/v1"}}
    )
    assert warnings == []
    assert settings.timeout == 5.0 and settings.memory_mb == 256
    assert settings.llm.model == "m" and settings.llm.base_url == "http://x/v1"


def test_bad_values_warn_name_the_key_and_keep_the_default() -> None:
    settings, warnings = parse_settings(
        {"timeout": "soon", "memoryMb": -3, "executor": "docker", "envPassthrough": "PATH"}
    )
    assert settings.timeout == 30.0 and settings.memory_mb == 1024
    assert settings.executor == "session" and settings.env_passthrough == ()
    text = "\n".join(warnings)
    assert "codeexec.timeout: expected a positive number, got 'soon'" in text
    assert "codeexec.memoryMb: expected a positive whole number" in text
    assert "codeexec.executor" in text and "codeexec.envPassthrough" in text


def test_not_an_object() -> None:
    settings, warnings = parse_settings(["timeout", 3])  # type: ignore[arg-type]
    assert settings == Settings() and "must be an object" in warnings[0]


def test_layers_later_wins_and_nested_objects_merge() -> None:
    store = SettingsStore(
        initialization={"timeout": 10, "llm": {"model": "a", "timeout": 5}},
        workspace={"llm": {"model": "b"}},
        pushed={"timeout": 3},
    )
    settings, _ = store.current()
    assert settings.timeout == 3.0
    assert settings.llm.model == "b" and settings.llm.timeout == 5.0


def test_section_of_accepts_wrapped_or_bare() -> None:
    assert section_of({"codeexec": {"timeout": 1}}) == {"timeout": 1}
    assert section_of({"timeout": 1}) == {"timeout": 1}
    assert section_of(None) is None


def test_our_own_key_variables_are_secret() -> None:
    settings, _ = parse_settings({"llm": {"apiKeyEnv": "MY_LLM"}, "http": {"tokenEnv": "EXEC_T"}})
    assert {"MY_LLM", "EXEC_T", "OPENAI_API_KEY"} <= settings.secret_env_names
