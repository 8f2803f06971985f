#!/usr/bin/env bash
# Set everything up on first use, then run Easel: ./webui.sh generate --prompt "a lighthouse at dusk"
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
export HF_HUB_DISABLE_TELEMETRY=1
if [ $# -eq 0 ]; then set -- --help; fi
exec .venv/bin/python -m app "$@"
