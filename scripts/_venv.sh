# Shared set-up for demo.sh and test.sh: a .venv with the package installed (source this file).
# Usage: . scripts/_venv.sh EXTRAS   (EXTRAS like "" or "[test]")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($PYTHON --version 2>&1)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.graphkit-installed$1"
# The test install has everything the plain one has: the demo after the tests installs nothing.
if [ -z "$1" ] && [ -f ".venv/.graphkit-installed[test]" ] \
    && [ ! pyproject.toml -nt ".venv/.graphkit-installed[test]" ]; then
    stamp=".venv/.graphkit-installed[test]"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing keras-graphkit$1 into .venv (first run downloads TensorFlow, ~1-2 min)" >&2
    # The distribution was called "graphkit" before: drop that install, or two distributions
    # would claim the same package and the same command.
    if .venv/bin/python -m pip show -qq graphkit >/dev/null 2>&1; then
        .venv/bin/python -m pip uninstall -qq -y graphkit >&2
    fi
    # (grep drops pip's notes about find-links folders missing on some machines)
    .venv/bin/python -m pip install -qq --disable-pip-version-check --upgrade pip 2>&1 \
        | { grep -v "^WARNING: Location 'file:" || true; } >&2
    .venv/bin/python -m pip install -qq --disable-pip-version-check -e ".$1" 2>&1 \
        | { grep -v "^WARNING: Location 'file:" || true; } >&2
    touch "$stamp"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
