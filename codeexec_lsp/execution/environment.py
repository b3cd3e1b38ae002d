"""The environment executed code sees: the server's, minus anything that looks secret."""

from __future__ import annotations

from collections.abc import Collection, Mapping

SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
# Names that merely look secret: what GUI toolkits need to reach the user's display.
NOT_SECRET = frozenset({"XAUTHORITY", "DISPLAY", "WAYLAND_DISPLAY"})
# Provider configuration is not secret but belongs to the server, not the user's code.
SERVER_PREFIXES = ("OPENAI_", "ANTHROPIC_", "CODEEXEC_")


def looks_secret(name: str) -> bool:
    upper = name.upper()
    if upper in NOT_SECRET:
        return False
    return any(marker in upper for marker in SECRET_MARKERS) or upper.startswith(SERVER_PREFIXES)


def scrubbed_environment(
    environ: Mapping[str, str],
    passthrough: Collection[str] = (),
    never: Collection[str] = (),
) -> dict[str, str]:
    """Copy `environ` without secrets. `passthrough` names are kept on purpose (e.g.
    DATABASE_URL), except those in `never` (our own API keys), which never get through."""
    env = {
        name: value
        for name, value in environ.items()
        if name not in never and (name in passthrough or not looks_secret(name))
    }
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONSTARTUP", None)
    return env
