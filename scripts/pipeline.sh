#!/usr/bin/env bash
# Set up a fresh machine and run the four-stage pipeline on the default robot (A1).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e .
robot-rl pipeline --robot a1 --out "runs/a1-$(date +%Y%m%d-%H%M%S)" "$@"
