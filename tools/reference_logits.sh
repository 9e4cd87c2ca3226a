#!/usr/bin/env bash
# Runs tools/reference_logits.py (our logits against transformers') with the reference venv
# ($ROOT/.venv-ref from tools/setup_reference.sh; VENV_REF=DIR overrides). Builds quantize first.
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${VENV_REF:-$ROOT/.venv-ref}"
[ -x "$VENV/bin/python" ] || { echo "reference_logits: $VENV missing; run tools/setup_reference.sh" >&2; exit 2; }
(cd "$ROOT" && swift build --product quantize >/dev/null)
exec "$VENV/bin/python" "$ROOT/tools/reference_logits.py" "$@"
