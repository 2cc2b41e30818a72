#!/usr/bin/env bash
# Create .venv (or reuse it) and install voxtool with every extra (pinyin, export, quality, softvc, diffvc), the
# resemblyzer wheel (GE2E weights) and the test tools.
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
# DiffVC's GE2E speaker encoder weights ship inside the resemblyzer wheel. resemblyzer declares the source-only
# `webrtcvad`; the extra `diffvc` installs the prebuilt webrtcvad-wheels (same module), so resemblyzer goes in
# without its declared dependencies (the others, librosa/numpy/scipy/torch, are voxtool's own).
if ! "$VENV/bin/python" -c "import importlib.util as u; exit(u.find_spec('resemblyzer') is None)" 2>/dev/null; then
  $PIP install -q --no-deps "resemblyzer>=0.1.3"
fi
"$VENV/bin/python" -c "import pyworld, torch, voxtool; print('voxtool', voxtool.__version__, '| torch', torch.__version__)"
