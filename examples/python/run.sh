#!/usr/bin/env bash
# Runs seed_and_drain.py in a venv holding requirements.txt, made on first use (or when the
# requirements change) under .lab/cache/python-venv, or $VENV. Arguments go to the script:
#
#   examples/python/run.sh [--agent HOST:PORT] [--node 'cargo xtask lab exec --']
#
# Needs python3 with venv (Debian: apt-get install python3-venv).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${VENV:-$root/.lab/cache/python-venv}"
stamp="$venv/.requirements"

if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
  echo "python: installing $here/requirements.txt into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi
cd "$root"
exec "$venv/bin/python" -u "$here/seed_and_drain.py" "$@"
