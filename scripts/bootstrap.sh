# Sourced by scripts/run and scripts/test: a virtual environment with the pinned requirements,
# and a local .env with generated keys. Safe to run again: it only does what is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"; return 0
    fi
  done
  echo "Model Hub needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$(find_python)" -m venv .venv
fi

# Development and CI install the test and bench sets (each includes requirements/base.txt, what
# production runs). The hash covers every file those two include, so a change to any re-installs.
want="$(cat requirements/base.txt requirements/test.txt requirements/bench.txt | sha256sum | cut -d' ' -f1)"
have="$(cat .venv/.requirements.sha256 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
  echo "==> installing requirements"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements/test.txt -r requirements/bench.txt
  echo "$want" > .venv/.requirements.sha256
fi

if [ ! -f .env ]; then
  echo "==> writing .env with generated keys (kept out of git)"
  .venv/bin/python - <<'PY'
import secrets
with open(".env", "w") as fh:
    fh.write(f"SECRET_KEY={secrets.token_urlsafe(48)}\n")
    fh.write(f"JWT_SIGNING_KEY={secrets.token_urlsafe(48)}\n")
    fh.write(f"DEMO_PASSWORD={secrets.token_urlsafe(9)}\n")
PY
fi
