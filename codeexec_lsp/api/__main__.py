"""`python -m codeexec_lsp.api`: the same as `codeexec-lsp api`."""

from __future__ import annotations

import argparse
import sys

from codeexec_lsp.api.cli import add_api_arguments, api_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codeexec_lsp.api", description="Serve the /execute API."
    )
    add_api_arguments(parser)
    return api_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
