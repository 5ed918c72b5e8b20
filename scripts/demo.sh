#!/usr/bin/env bash
# Set up .venv (if needed) and run `graphkit demo`. Extra arguments go to the demo.
. "$(dirname "$0")/_venv.sh" ""
exec .venv/bin/graphkit demo "$@"
