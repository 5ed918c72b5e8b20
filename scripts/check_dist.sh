#!/usr/bin/env bash
# Build check (CI runs it after the tests): `python -m build` makes a wheel and an sdist of
# keras-graphkit; each is installed into its own clean venv and must run `graphkit --version`
# and `graphkit --help`. Everything happens in a temporary folder that is removed at the end.
#
# Each artifact is installed with --no-deps, plus typer (with its own dependencies) only:
# --version and --help import no TensorFlow, Keras or onnxruntime, and skipping those keeps the
# check at seconds instead of minutes. It proves the packaging (name, files, console script,
# version), not the dependency resolution, which ./scripts/test.sh exercises.
set -euo pipefail
. "$(dirname "$0")/_venv.sh" "[test]"   # (cd to the repository root; `build` comes with [test])
PYTHON="${PYTHON:-python3}"

fail() {
    echo "check_dist: FAILED: $*" >&2
    exit 1
}

tmp="$(mktemp -d "${TMPDIR:-/tmp}/graphkit-dist-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
echo "check_dist: python -m build (wheel and sdist) into $tmp/dist"
if ! .venv/bin/python -m build --outdir "$tmp/dist" . >"$tmp/build.log" 2>&1; then
    cat "$tmp/build.log" >&2
    fail "python -m build"
fi
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)"
shopt -s nullglob
wheels=("$tmp"/dist/keras_graphkit-"$version"-*.whl)
sdists=("$tmp"/dist/keras_graphkit-"$version".tar.gz)
shopt -u nullglob
[ "${#wheels[@]}" -eq 1 ] || fail "expected one keras_graphkit-$version wheel in: $(ls "$tmp/dist")"
[ "${#sdists[@]}" -eq 1 ] || fail "expected one keras_graphkit-$version sdist in: $(ls "$tmp/dist")"

for artifact in "${wheels[0]}" "${sdists[0]}"; do
    name="$(basename "$artifact")"
    venv="$tmp/venv-${name%%.tar.gz}"
    echo "check_dist: $name into a clean venv"
    "$PYTHON" -m venv "$venv"
    # (grep drops pip's notes about find-links folders missing on some machines)
    if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$artifact" \
        >"$tmp/pip.log" 2>&1 \
        || ! "$venv/bin/python" -m pip install -q --disable-pip-version-check typer \
        >>"$tmp/pip.log" 2>&1; then
        grep -v "^WARNING: Location 'file:" "$tmp/pip.log" >&2 || true
        fail "pip install $name"
    fi
    # Outside the repository, so that its graphkit/ folder cannot stand in for the installed one.
    (
        cd "$tmp"
        out="$("$venv/bin/graphkit" --version 2>&1)" || fail "$name: graphkit --version: $out"
        [ "$out" = "graphkit $version" ] || fail "$name: graphkit --version says '$out', not 'graphkit $version'"
        help="$("$venv/bin/graphkit" --help 2>&1)" || fail "$name: graphkit --help: $help"
        for command in inspect convert verify export run; do
            grep -q "$command" <<<"$help" || fail "$name: graphkit --help does not list $command"
        done
        dist="$("$venv/bin/python" -c 'import importlib.metadata as m, graphkit
print(m.version("keras-graphkit"), graphkit.__file__)')" || fail "$name: no keras-graphkit metadata"
        case "$dist" in
            "$version $venv/"*) ;;
            *) fail "$name: keras-graphkit metadata and import give '$dist'" ;;
        esac
        echo "  $out; --help lists the commands; graphkit imported from the venv"
    )
done
echo "check_dist: OK in $((SECONDS - start)) s"
