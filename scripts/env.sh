# Create or reuse the project's virtual environment and install what a task needs.
# Usage: source scripts/env.sh EXTRAS   (e.g. "dev,bake"); sets PY to the venv's python.
# torch==2.13.0 goes first: a bare torch requirement would pull a multi-GB CUDA build on CPU machines.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HARP_VENV:-$root/.venv}"
extras="${1:-}"
python_bin="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python_bin" -m venv "$venv"
fi
PY="$venv/bin/python"
stamp="$venv/.harp-installed-${extras//,/-}"
want="$(cat "$root/setup.cfg" "$root/pyproject.toml" | sha1sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$PY" -m pip install -q --upgrade pip
  "$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q "torch==2.13.0"
  "$PY" -m pip install -q -e "$root${extras:+[$extras]}"
  echo "$want" > "$stamp"
fi
export PY
