#!/usr/bin/env bash
# Sets up everything `make run` and `make test` need on a fresh machine:
# Debian packages (when root), the virtualenv and the pinned Python packages.
# Apache Kafka's jars are resolved with Maven by `teamnl-infra up` itself.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

# Debian packages the project uses; installed only when missing.
#   postgresql      the local database cluster (teamnl-infra runs its own, on its own port)
#   kcat            a Kafka client nobody here wrote, used by a test to read our events
#   docker-compose  `docker-compose config` parses docker-compose.yml without an engine
#   chromium        the browser for the dashboard's browser test (Playwright drives it) and
#                   the dashboard's PDF progress report (chromium --headless --print-to-pdf)
#   poppler-utils   pdftotext, with which a test reads the figures of that PDF report
APT_PACKAGES=(postgresql kcat docker-compose chromium poppler-utils)
missing=()
command -v pg_ctlcluster >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v kcat >/dev/null || missing+=(kcat)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v chromium >/dev/null || missing+=(chromium)
command -v pdftotext >/dev/null || missing+=(poppler-utils)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "==> missing Debian packages; run as root:" >&2
    echo "    apt-get update && apt-get install -y ${APT_PACKAGES[*]}" >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.teamnl-installed"
inputs=$(cat requirements/*.txt shared/pyproject.toml services/*/pyproject.toml suite/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$inputs" ]; then
  echo "==> installing Python packages (pinned by requirements/constraints.txt)"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -c requirements/constraints.txt \
    -e shared -e services/nlib -e services/tinl -e services/werkplaats -e services/iso-dashboard -e suite \
    -r requirements/dev.txt
  "$VENV/bin/pip" check
  echo "$inputs" > "$stamp"
fi

# The dashboard's front-end bundle (npm packages at build time, never copied into git).
scripts/build-frontend.sh
