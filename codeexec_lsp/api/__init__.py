"""The reference server for the /execute contract (see DESIGN.md, "The /execute contract").

`app.create_app(settings)` builds the Starlette application and `server.serve(host, port,
settings)` runs it under uvicorn; `cli` holds the `codeexec-lsp api` options. This package
imports nothing heavy itself, so the language server can import `cli` without paying for
Starlette and uvicorn at start-up.
"""
