#!/usr/bin/env bash
# Install everything needed and run the main job on an embedded default:
# synthetic LipsSync takes -> prep -> train mouth-tiny -> infer on an unseen singer -> curve.csv + PNG.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${VOXTOOL_VENV:-.venv}
exec "$VENV/bin/voxtool" demo --out "${1:-demo-out}"
