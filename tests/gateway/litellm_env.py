"""LiteLLM's proxy in a virtualenv of its own, created once and reused.

The proxy pins dozens of packages (pydantic, httpx, uvicorn, fastapi…) at versions that
would clash with ours, so it never shares our environment: it gets a venv under a cache
directory, keyed by the exact requirements, and the tests talk to it over HTTP only.

    python -m tests.gateway.litellm_env     # create (or reuse) it; prints the venv path

CI can run that line before the tests so the install time is paid (and reported) once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# `prisma` is what makes a proxy without a database answer a missing key with 401 instead
# of a 400 about the database; the proxy imports it but never needs its engines for that.
REQUIREMENTS = ("litellm[proxy]==1.108.0", "prisma==0.15.0")
CACHE_ENV = "CODEEXEC_GATEWAY_CACHE"


def cache_root() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "codeexec-lsp"


def venv_dir() -> Path:
    digest = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()[:12]
    return cache_root() / f"litellm-proxy-{digest}"


def proxy_executable(venv: Path) -> Path:
    return venv / "bin" / "litellm"


def is_ready(venv: Path) -> bool:
    return (venv / ".complete").is_file() and proxy_executable(venv).is_file()


def ensure_venv(*, log: bool = False) -> Path:
    """The venv with the proxy installed; creates it when missing. Raises CalledProcessError
    (with pip's output) when the install fails, e.g. without access to the package index."""
    venv = venv_dir()
    if is_ready(venv):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Scripts in a venv carry its absolute path, so it is built in place; a lock keeps two
    # test processes (xdist workers) from building it at once, and `.complete`, written last,
    # tells a finished venv from one an interrupted install left behind.
    with open(venv.with_name(venv.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_ready(venv):
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
            check=True,
            capture_output=not log,
            text=True,
        )
        (venv / ".complete").write_text("\n".join(REQUIREMENTS) + "\n")
        if log:
            print(f"installed {' '.join(REQUIREMENTS)} in {time.monotonic() - started:.0f} s")
    return venv


if __name__ == "__main__":
    print(ensure_venv(log=True))
