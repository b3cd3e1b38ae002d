"""The OpenAPI 3.0 document of the server, with this instance's limits filled in."""

from __future__ import annotations

from typing import Any

from codeexec_lsp import __version__
from codeexec_lsp.api.contract import LIBRARY_PATTERN
from codeexec_lsp.api.settings import ApiSettings


def _error_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _schemas(settings: ApiSettings) -> dict[str, Any]:
    position = {"type": "integer", "nullable": True}
    return {
        "ExecuteRequest": {
            "type": "object",
            "required": ["code"],
            "properties": {
                "code": {"type": "string", "description": "Python source to run"},
                "language": {"type": "string", "enum": ["python"], "default": "python"},
                "environment": {
                    "type": "object",
                    "properties": {
                        "libraries": {
                            "type": "array",
                            "maxItems": settings.max_libraries,
                            "items": {"type": "string", "pattern": LIBRARY_PATTERN},
                            "description": "Distribution or module names the code needs",
                        }
                    },
                },
                "execution_options": {
                    "type": "object",
                    "properties": {
                        "max_run_time": {
                            "type": "number",
                            "minimum": 0,
                            "exclusiveMinimum": True,
                            "maximum": settings.max_run_time,
                            "default": settings.effective_default_run_time,
                            "description": "Wall-clock limit in seconds; over the server's "
                            "maximum is refused with 422",
                        }
                    },
                },
            },
        },
        "Frame": {
            "type": "object",
            "required": ["file", "line", "name"],
            "properties": {
                "file": {"type": "string"},
                "line": {"type": "integer"},
                "name": {"type": "string"},
                "column": position,
                "end_line": position,
                "end_column": position,
            },
        },
        "ErrorInfo": {
            "type": "object",
            "nullable": True,
            "required": ["type", "message"],
            "description": "The exception, located in the submitted code (line 1 is its "
            "first line, columns are 0-based code points)",
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "line": position,
                "column": position,
                "end_line": position,
                "end_column": position,
                "traceback": {"type": "string"},
                "frames": {"type": "array", "items": {"$ref": "#/components/schemas/Frame"}},
            },
        },
        "ExecuteResponse": {
            "type": "object",
            "required": ["status", "output", "error"],
            "properties": {
                "status": {"type": "string", "enum": ["success", "error", "timeout"]},
                "output": {"type": "string", "description": "Standard output"},
                "error": {
                    "type": "string",
                    "description": "Standard error followed by the traceback, if any",
                },
                "stderr": {"type": "string", "description": "Standard error alone"},
                "value": {
                    "type": "string",
                    "nullable": True,
                    "description": "repr() of a trailing expression",
                },
                "error_info": {"$ref": "#/components/schemas/ErrorInfo"},
                "run_status": {
                    "type": "string",
                    "enum": ["ok", "error", "timeout", "limit", "cancelled"],
                },
                "duration_ms": {"type": "number"},
                "truncated": {"type": "boolean"},
                "max_run_time": {"type": "number"},
                "outputs": {
                    "type": "array",
                    "description": "Rich outputs in the order they appeared (Matplotlib "
                    "figures, display(), a trailing value's HTML or image forms), in nbformat's "
                    "shape; binary MIME types are base64 text. Optional for clients",
                    "items": {"$ref": "#/components/schemas/Output"},
                },
            },
        },
        "Output": {
            "type": "object",
            "required": ["output_type", "data"],
            "properties": {
                "output_type": {"type": "string", "enum": ["display_data", "execute_result"]},
                "data": {
                    "type": "object",
                    "description": "One entry per MIME type: text, or base64 for binary types "
                    "(image/png, image/jpeg); JSON types hold JSON",
                },
                "metadata": {"type": "object"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error", "code"],
            "properties": {
                "error": {"type": "string", "description": "What went wrong and what to do"},
                "code": {"type": "string"},
                "detail": {"type": "object"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ok"]},
                "running": {"type": "integer"},
                "waiting": {"type": "integer"},
                "max_concurrency": {"type": "integer"},
                "queue_size": {"type": "integer"},
                "max_run_time": {"type": "number"},
            },
        },
    }


def openapi_document(settings: ApiSettings) -> dict[str, Any]:
    retry_after = {
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "schema": {"type": "integer"},
        }
    }
    execute_responses = {
        "200": {
            "description": "The code ran (successfully or not) or was stopped",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ExecuteResponse"}}
            },
        },
        "400": _error_response("The body is not JSON"),
        "401": _error_response("No token or a wrong one"),
        "408": _error_response(
            f"The body did not arrive within {settings.body_timeout_s:g} s of the request"
        ),
        "413": _error_response(f"The body is over {settings.max_body_bytes} bytes"),
        "422": _error_response("The body does not follow the contract, or is over a limit"),
        "500": _error_response("The server could not run the code; see its log"),
        "503": _error_response("Every run slot and queue place is taken", retry_after),
    }
    json_content = "application/json"
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "codeexec /execute API",
            "version": __version__,
            "description": "Runs Python code in a fresh sandboxed process per request. The "
            "server keeps no state between requests.",
        },
        "paths": {
            "/execute": {
                "post": {
                    "operationId": "execute",
                    "summary": "Run Python code",
                    "security": [{"bearerAuth": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            json_content: {
                                "schema": {"$ref": "#/components/schemas/ExecuteRequest"}
                            }
                        },
                    },
                    "responses": execute_responses,
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness and load",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The server is up",
                            "content": {
                                json_content: {"schema": {"$ref": "#/components/schemas/Health"}}
                            },
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document",
                            "content": {json_content: {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": _schemas(settings),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
