"""Settings: typed defaults, merged from initializationOptions, workspace/configuration and
didChangeConfiguration (later wins), validated key by key.

A bad value never stops the server: it yields a warning naming the key and what was
expected, and the default is used for that key.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

EXECUTORS = ("local", "session", "http", "jupyter")
SANDBOX_PROFILES = ("standard", "strict")
PROVIDERS = ("openai", "anthropic")
HOVER_IMAGES = ("auto", "always", "never")


@dataclass(frozen=True)
class HttpSettings:
    url: str | None = None
    token_env: str = "CODEEXEC_API_TOKEN"


@dataclass(frozen=True)
class JupyterSettings:
    """The `jupyter` executor (execution/jupyter/): which kernel, where."""

    kernel: str | None = None  # a kernelspec name; None: ipykernel on the resolved `python`
    url: str | None = None  # Jupyter Server / Kernel Gateway / Enterprise Gateway base URL
    token_env: str = "JUPYTER_TOKEN"  # the variable that holds the server's token
    kernel_id: str | None = None  # attach to this kernel on `url` (never deleted by us)
    connection_file: str | None = None  # attach to this running local kernel


@dataclass(frozen=True)
class LlmSettings:
    provider: str = "openai"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    timeout: float = 60.0
    exclude: tuple[str, ...] = ("**/.env*", "**/*secret*", "**/*.pem", "**/*.key")


@dataclass(frozen=True)
class FixSettings:
    verify: bool = True
    attempts: int = 3


@dataclass(frozen=True)
class Settings:
    executor: str = "session"
    python: str | None = None
    timeout: float = 30.0
    cpu_seconds: float | None = None
    memory_mb: int = 1024
    max_output_bytes: int = 1_000_000
    max_file_mb: int = 512
    max_open_files: int = 1024
    env_passthrough: tuple[str, ...] = ()
    # "standard": the user's own code runs as in their terminal (network on, writes
    # wherever the user may write), minus secrets, within the limits, unable to touch the
    # server; "strict": no network, throwaway writes, nothing of other runs (DESIGN.md
    # principle 8; execution/launcher.py builds both).
    sandbox: str = "standard"
    # None: the profile decides (standard on, strict off); true/false overrides it.
    network: bool | None = None
    # Images in hover: "auto" for clients known to render Markdown `data:` images (VS Code
    # and its forks, Sublime's LSP), "always" to try every client, "never" for text lines.
    hover_images: str = "auto"
    http: HttpSettings = field(default_factory=HttpSettings)
    jupyter: JupyterSettings = field(default_factory=JupyterSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    fix: FixSettings = field(default_factory=FixSettings)

    @property
    def secret_env_names(self) -> frozenset[str]:
        """Variables that hold our own credentials: never passed to executed code."""
        names = {
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "CODEEXEC_API_TOKEN",
            self.http.token_env,
            self.jupyter.token_env,
        }
        if self.llm.api_key_env:
            names.add(self.llm.api_key_env)
        return frozenset(names)


# --- validation ---------------------------------------------------------------------------

Check = Callable[[Any], Any]


class _Invalid(Exception):
    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _Invalid("a positive number")
    return float(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
        raise _Invalid("a positive whole number")
    if isinstance(value, float) and not value.is_integer():
        raise _Invalid("a positive whole number")
    return int(value)


def _optional_string(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Invalid("a string")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _Invalid("a non-empty string")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def _optional_boolean(value: Any) -> bool | None:
    if value is None:
        return None
    return _boolean(value)


def _string_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _Invalid("a list of strings")
    return tuple(value)


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str:
        if value not in choices:
            raise _Invalid("one of " + ", ".join(f'"{c}"' for c in choices))
        return str(value)

    return check


# (settings key as clients send it, attribute path, check)
_KEYS: tuple[tuple[str, str, Check], ...] = (
    ("executor", "executor", _one_of(*EXECUTORS)),
    ("python", "python", _optional_string),
    ("timeout", "timeout", _positive_number),
    ("cpuSeconds", "cpu_seconds", _positive_number),
    ("memoryMb", "memory_mb", _positive_int),
    ("maxOutputBytes", "max_output_bytes", _positive_int),
    ("maxFileMb", "max_file_mb", _positive_int),
    ("maxOpenFiles", "max_open_files", _positive_int),
    ("envPassthrough", "env_passthrough", _string_list),
    ("sandbox", "sandbox", _one_of(*SANDBOX_PROFILES)),
    ("network", "network", _optional_boolean),
    ("hoverImages", "hover_images", _one_of(*HOVER_IMAGES)),
    ("http.url", "http.url", _optional_string),
    ("http.tokenEnv", "http.token_env", _string),
    ("jupyter.kernel", "jupyter.kernel", _optional_string),
    ("jupyter.url", "jupyter.url", _optional_string),
    ("jupyter.tokenEnv", "jupyter.token_env", _string),
    ("jupyter.kernelId", "jupyter.kernel_id", _optional_string),
    ("jupyter.connectionFile", "jupyter.connection_file", _optional_string),
    ("llm.provider", "llm.provider", _one_of(*PROVIDERS)),
    ("llm.baseUrl", "llm.base_url", _optional_string),
    ("llm.model", "llm.model", _optional_string),
    ("llm.apiKeyEnv", "llm.api_key_env", _optional_string),
    ("llm.timeout", "llm.timeout", _positive_number),
    ("llm.exclude", "llm.exclude", _string_list),
    ("fix.verify", "fix.verify", _boolean),
    ("fix.attempts", "fix.attempts", _positive_int),
)


def _lookup(raw: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _with_value(settings: Settings, attribute: str, value: Any) -> Settings:
    if "." not in attribute:
        return replace(settings, **{attribute: value})
    group, name = attribute.split(".", 1)
    return replace(settings, **{group: replace(getattr(settings, group), **{name: value})})


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_settings(raw: Mapping[str, Any] | None) -> tuple[Settings, list[str]]:
    """Typed settings from a raw `codeexec` settings object, and warnings for bad values."""
    settings = Settings()
    warnings: list[str] = []
    if raw is None:
        return settings, warnings
    if not isinstance(raw, Mapping):
        return settings, [f"codeexec settings must be an object, got {_describe(raw)}"]
    for key, attribute, check in _KEYS:
        present, value = _lookup(raw, key)
        if not present:
            continue
        try:
            settings = _with_value(settings, attribute, check(value))
        except _Invalid as invalid:
            default = _lookup_default(attribute)
            warnings.append(
                f"codeexec.{key}: expected {invalid.expected}, got {_describe(value)}; "
                f"using the default ({_describe(default)})"
            )
    return settings, warnings


def _lookup_default(attribute: str) -> Any:
    node: Any = Settings()
    for part in attribute.split("."):
        node = getattr(node, part)
    return node


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two raw settings objects; `update` wins, nested objects merge."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def section_of(payload: Any) -> Mapping[str, Any] | None:
    """The `codeexec` object from a didChangeConfiguration or initializationOptions payload.

    Clients send either the settings object itself or `{"codeexec": {...}}`.
    """
    if not isinstance(payload, Mapping):
        return None
    inner = payload.get("codeexec")
    if isinstance(inner, Mapping):
        return inner
    return payload


@dataclass
class SettingsStore:
    """The three raw layers, re-parsed from defaults whenever one changes."""

    initialization: dict[str, Any] = field(default_factory=dict)
    workspace: dict[str, Any] = field(default_factory=dict)
    pushed: dict[str, Any] = field(default_factory=dict)

    def current(self) -> tuple[Settings, list[str]]:
        raw = merge(merge(self.initialization, self.workspace), self.pushed)
        return parse_settings(raw)
