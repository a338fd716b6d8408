# Sourced by the scripts beside it.
#
# ensure_venv DIR IMPORTS PACKAGE...
#   Makes DIR a Python venv in which `import IMPORTS` works, installing PACKAGEs from PyPI
#   when it does not (a broken venv is rebuilt from scratch). Uses $PYTHON, default python3.
ensure_venv() {
    local dir="$1" imports="$2"
    shift 2
    if "$dir/bin/python" -c "import $imports" >/dev/null 2>&1; then
        return
    fi
    echo "creating $dir with $* from PyPI" >&2
    rm -rf "$dir"
    "${PYTHON:-python3}" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
}
