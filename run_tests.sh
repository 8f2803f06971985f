#!/usr/bin/env bash
# Set everything up on first use, then run the test suite offline: ./run_tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --test
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
exec .venv/bin/python -m pytest "$@"
