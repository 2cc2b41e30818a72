#!/usr/bin/env bash
# Create .venv (or reuse it) and install voxtool with every extra (pinyin, export) and its test tools.
# The CPU torch wheel is installed first so that pip never pulls the multi-GB CUDA build;
# set VOXTOOL_TORCH=skip to keep a torch you installed yourself (GPU users: see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VOXTOOL_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
if [ "${VOXTOOL_TORCH:-}" != "skip" ] && ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  $PIP install -q "torch==2.13.0"
fi
$PIP install -q -e ".[all,test]"
"$VENV/bin/python" -c "import pyworld, torch, voxtool; print('voxtool', voxtool.__version__, '| torch', torch.__version__)"
