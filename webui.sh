#!/usr/bin/env bash
# Set everything up on first use, then serve Easel's web UI on http://127.0.0.1:7860.
# Other commands: ./webui.sh generate --prompt "...", ./webui.sh models, ./webui.sh --listen --api
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
export HF_HUB_DISABLE_TELEMETRY=1
exec .venv/bin/python -m app "$@"
