import os

# Executed code must never see a real key from the developer's shell during tests.
for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "CODEEXEC_API_TOKEN"):
    os.environ.pop(name, None)
