#!/usr/bin/env bash
# Installs the heavy Python reference packages (tools/requirements-reference.txt plus the oracle pins
# of tools/requirements.txt) into <repo>/.venv-ref, for the tools/ scripts that compare us with
# PyTorch/transformers, sentencepiece and zipnn. Not used by the tests or CI. Safe to run again:
# when the venv matches both files it only checks. Several GB on the first run (PyTorch's wheels).
# Environment: PYTHON=/path/to/python3 picks the interpreter (default: python3); VENV_REF=DIR
# puts the environment elsewhere.
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${VENV_REF:-$ROOT/.venv-ref}"
STAMP="$VENV/.requirements.sha256"
want="$(cat "$ROOT/tools/requirements.txt" "$ROOT/tools/requirements-reference.txt" | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
"${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r "$ROOT/tools/requirements.txt" -r "$ROOT/tools/requirements-reference.txt"
echo "$want" >"$STAMP"
echo "setup_reference: installed $VENV"
