#!/usr/bin/env bash
# Builds the ISO NL dashboard's front-end (charts, live updates, offline world map) from the
# npm packages pinned in services/iso-dashboard/frontend/package-lock.json into
# services/iso-dashboard/teamnl_dashboard/static/dist/ (not in git).
# Idempotent: does nothing when package files, sources and build script are unchanged.
set -euo pipefail
cd "$(dirname "$0")/../services/iso-dashboard/frontend"

DIST=../teamnl_dashboard/static/dist
STAMP="$DIST/.inputs-sha256"
command -v npm >/dev/null || { echo "build-frontend: npm is missing (apt-get install -y npm)" >&2; exit 1; }

inputs=$(find package.json package-lock.json build src -type f -print0 | sort -z \
  | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$inputs" ] && [ -f "$DIST/dashboard.js" ] \
    && [ -f "$DIST/world-110m.json" ]; then
  exit 0
fi

lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f node_modules/.teamnl-lock ] || [ "$(cat node_modules/.teamnl-lock)" != "$lock_hash" ]; then
  echo "==> npm ci (services/iso-dashboard/frontend)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.teamnl-lock
fi
echo "==> building the dashboard front-end"
npm run --silent build
echo "$inputs" > "$STAMP"
