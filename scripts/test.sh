#!/usr/bin/env bash
# The test suite (CI runs exactly this). Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
source "$(dirname "$0")/env.sh" "dev,bake"
cd "$(dirname "$0")/.."
exec "$PY" -m pytest tests -q "$@"
