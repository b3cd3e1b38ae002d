"""The environment executed code sees: the server's, minus what looks secret (principle 6)."""

from __future__ import annotations

from codeexec_lsp.execution.environment import looks_secret, scrubbed_environment

SERVER_ENV = {
    "PATH": "/usr/bin",
    "HOME": "/home/u",
    "LANG": "C.UTF-8",
    "MY_API_KEY": "k1",
    "github_token": "k2",
    "DB_Password": "k3",
    "SMTP_PASSWD": "k4",
    "CLIENT_SECRET": "k5",
    "AWS_CREDENTIALS_FILE": "k6",
    "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
    "anthropic_model": "m",
    "CODEEXEC_API_TOKEN_FILE": "f",
    "DATABASE_URL": "postgres://u:p@h/db",
    "PYTHONSTARTUP": "/home/u/.startup.py",
    "PYTHONIOENCODING": "latin-1",
}


def test_secret_looking_and_server_names_are_dropped_whatever_their_case() -> None:
    env = scrubbed_environment(SERVER_ENV)
    assert {"PATH", "HOME", "LANG", "DATABASE_URL"} <= set(env)
    for name in (
        "MY_API_KEY",
        "github_token",
        "DB_Password",
        "SMTP_PASSWD",
        "CLIENT_SECRET",
        "AWS_CREDENTIALS_FILE",
        "OPENAI_BASE_URL",
        "anthropic_model",
        "CODEEXEC_API_TOKEN_FILE",
    ):
        assert name not in env, name
        assert looks_secret(name), name
    assert not looks_secret("PATH") and not looks_secret("DATABASE_URL")


def test_passthrough_keeps_a_name_on_purpose_but_never_our_own_keys() -> None:
    env = scrubbed_environment(
        SERVER_ENV, passthrough=["DB_Password", "MY_API_KEY"], never=["MY_API_KEY", "PATH"]
    )
    assert env["DB_Password"] == "k3"
    assert "MY_API_KEY" not in env  # `never` wins over passthrough
    assert "PATH" not in env  # `never` removes any name, secret-looking or not
    assert "github_token" not in env


def test_the_child_writes_utf8_unbuffered_and_runs_no_startup_file() -> None:
    env = scrubbed_environment(SERVER_ENV)
    assert env["PYTHONIOENCODING"] == "utf-8" and env["PYTHONUNBUFFERED"] == "1"
    assert "PYTHONSTARTUP" not in env
    assert scrubbed_environment({})["PYTHONIOENCODING"] == "utf-8"
    assert SERVER_ENV["PYTHONSTARTUP"]  # the server's own mapping is not changed


def test_what_gui_toolkits_need_is_not_taken_for_a_secret() -> None:
    """XAUTHORITY contains AUTH, but without it matplotlib, Tk and Qt cannot open a window."""
    display = {"XAUTHORITY": "/run/user/1000/xauth", "DISPLAY": ":0", "WAYLAND_DISPLAY": "w-0"}
    assert scrubbed_environment({**SERVER_ENV, **display}).items() >= display.items()
    assert not any(looks_secret(name) for name in display)
