#!/usr/bin/env bash
# Install everything needed (every extra) and run the whole test suite (CI runs exactly this through .ci/run).
# Arguments go to pytest; the dev loop skips the DDP and long end-to-end tests: bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${VOXTOOL_VENV:-.venv}
"$VENV/bin/ruff" check voxtool tests benchmarks
exec "$VENV/bin/python" -m pytest -q "$@"
