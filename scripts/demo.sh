#!/usr/bin/env bash
# The main job on the embedded default: no webcam, no licensed files, no downloads at run time.
set -euo pipefail
source "$(dirname "$0")/env.sh" ""
cd "$(dirname "$0")/.."
exec "$PY" -m demos.cli demo --out out/demo "$@"
