#!/usr/bin/env bash
# Set up Easel's virtual environment in .venv (idempotent; fast when already done).
# Reuses a torch that is already installed: if the system Python has torch (a CUDA or MPS build, say),
# the environment sees it instead of downloading another. Otherwise installs torch $EASEL_TORCH_VERSION.
# Usage: scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

if [ ! -x .venv/bin/python ]; then
  if "$PY" -c "import torch" 2>/dev/null; then
    echo "setup: reusing the torch of $PY ($("$PY" -c 'import torch; print(torch.__version__)'))"
    "$PY" -m venv --system-site-packages .venv
  else
    "$PY" -m venv .venv
  fi
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" 2>/dev/null; then
  echo "setup: installing torch ${EASEL_TORCH_VERSION:-2.13.0}"
  "$VPY" -m pip install -q "torch==${EASEL_TORCH_VERSION:-2.13.0}"
fi
stamp=".venv/.easel-installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Easel's dependencies"
  "$VPY" -m pip install -q -e ".${extras}"
  touch "$stamp"
fi
