#!/usr/bin/env bash
# Gradescope runs this once when the image is built. A venv plus pip: no
# conda, no browser downloads. CPU torch unless a GPU answers.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SRC="$ROOT/source"
VENV="$ROOT/sodl-venv"
PYTHON="${SODL_SETUP_PYTHON:-python3}"
PIP_EXTRA=()
if [ -n "${SODL_WHEELHOUSE:-}" ]; then
  PIP_EXTRA=(--no-index --find-links "$SODL_WHEELHOUSE")
fi

"$PYTHON" -m venv "$VENV"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  echo "GPU found: installing a CUDA build of torch"
  "$VENV/bin/pip" install "${PIP_EXTRA[@]}" "torch==__TORCH_VERSION__"
else
  echo "no GPU: installing the CPU build of torch"
  "$VENV/bin/pip" install "${PIP_EXTRA[@]}" --retries 1 --timeout 15 --index-url https://download.pytorch.org/whl/cpu "torch==__TORCH_VERSION__" \
    || "$VENV/bin/pip" install "${PIP_EXTRA[@]}" "torch==__TORCH_VERSION__"
fi
"$VENV/bin/pip" install "${PIP_EXTRA[@]}" -r "$SRC/requirements.txt"
# The course code (tests' helpers, sodl_ref) goes where student code cannot read it.
"$VENV/bin/pip" install --no-deps --target "$SRC/lib" "$SRC"/sodl-*.whl
chmod -R go-rwx "$SRC"
chmod -R go+rX "$VENV"
