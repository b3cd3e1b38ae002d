import os
import sys

# With no `python` setting, a run uses $VIRTUAL_ENV's interpreter (as a user's activated venv
# should win). The tests' runs must use the interpreter running the tests, which has the test
# dependencies (ipykernel, matplotlib): an outer venv activated around `.venv/bin/python -m
# pytest` (CI's, a developer's) must not be what the executors start.
if sys.prefix != sys.base_prefix:
    os.environ["VIRTUAL_ENV"] = sys.prefix
else:
    os.environ.pop("VIRTUAL_ENV", None)

# Executed code must never see a real key from the developer's shell during tests.
for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "CODEEXEC_API_TOKEN"):
    os.environ.pop(name, None)
