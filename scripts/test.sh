#!/usr/bin/env bash
# Install everything needed and run the whole test suite (CI runs exactly this through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${VOXTOOL_VENV:-.venv}
"$VENV/bin/ruff" check voxtool tests benchmarks
exec "$VENV/bin/python" -m pytest -q "$@"
