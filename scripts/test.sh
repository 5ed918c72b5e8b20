#!/usr/bin/env bash
# Set up .venv with the test extras (if needed), lint, then run the whole test suite.
. "$(dirname "$0")/_venv.sh" "[test]"
.venv/bin/ruff check graphkit tests scripts
.venv/bin/ruff format --check graphkit tests scripts
exec .venv/bin/python -m pytest "$@"
