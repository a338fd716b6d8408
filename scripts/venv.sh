# Sourced by the scripts beside it.
#
# ensure_venv DIR IMPORTS PIP_ARGS...
#   Makes DIR a Python venv in which `import IMPORTS` works and whose packages were installed
#   with exactly PIP_ARGS (package names, pins, or `-r FILE`): a venv that fails the import,
#   or was made with other arguments or another version of a requirements file, is rebuilt from
#   scratch. Uses $PYTHON, default python3.
ensure_venv() {
    local dir="$1" imports="$2"
    shift 2
    local wanted arg prev=""
    # What the venv was made from: the arguments, plus the contents of any requirements file.
    wanted="$*"
    for arg in "$@"; do
        if [ "$prev" = "-r" ]; then wanted+=$'\n'"$(cat "$arg")"; fi
        prev="$arg"
    done
    if "$dir/bin/python" -c "import $imports" >/dev/null 2>&1 \
        && [ "$(cat "$dir/.ratchet-made-from" 2>/dev/null)" = "$wanted" ]; then
        return
    fi
    echo "creating $dir with $* from PyPI" >&2
    rm -rf "$dir"
    "${PYTHON:-python3}" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
    printf '%s' "$wanted" > "$dir/.ratchet-made-from"
}
