#!/usr/bin/env bash
# Builds Jaeger (v2, the `cmd/jaeger` all-in-one binary: OTLP in, query API out, in-memory
# storage) from the Go module proxy, into a cache outside the repository.
# tests/e2e/test_jaeger.py runs it.
#
# Usage: scripts/build-jaeger.sh        prints the binary's path on stdout when done
# Env:   TEAMNL_TOOLS_DIR (default ~/.cache/teamnl/tools); GOMODCACHE/GOCACHE as usual
#
# Idempotent: skipped when the binary of this version exists (then it takes no time).
# Measured on the 2-core machine: cold (empty Go module and build caches) 12m17s wall, of
# which 38 s downloading ~320 modules (1.3 GB module cache, 1.6 GB build cache); with warm
# caches but no binary, 34 s. The binary is ~120 MB.
set -euo pipefail

JAEGER_VERSION=v1.76.0   # module version; its cmd/jaeger is the Jaeger v2 binary
TOOLS=${TEAMNL_TOOLS_DIR:-$HOME/.cache/teamnl/tools}
JAEGER=$TOOLS/bin/jaeger-$JAEGER_VERSION

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-jaeger.sh: %s\n' "$*" >&2; exit 1; }

if [ -x "$JAEGER" ]; then
  log "jaeger $JAEGER_VERSION already built: $JAEGER"
  echo "$JAEGER"
  exit 0
fi
command -v go >/dev/null || die "go is needed to build jaeger (https://go.dev/dl)"

mkdir -p "$TOOLS/bin" "$TOOLS/dl"
# Jaeger's go.mod has a replace directive, so `go install ...@version` refuses it. Build it
# instead as the tool of a throw-away module that repeats that replace directive.
work=$(mktemp -d "$TOOLS/dl/jaeger-build.XXXX")
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
log "building jaeger $JAEGER_VERSION ($(go version | cut -d' ' -f3), $(nproc) cores) in $work"
cd "$work"
export GOFLAGS=-mod=mod GOWORK=off
go mod init teamnl.local/jaeger-tool >/dev/null 2>&1
go mod edit -replace github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0
log "resolving and downloading modules (go get -tool; ~1.3 GB into $(go env GOMODCACHE) when cold)"
if ! go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" >"$work/get.log" 2>&1; then
  cat "$work/get.log" >&2
  die "go get failed"
fi
log "$(grep -c '^go: added' "$work/get.log") modules, $(grep -c '^go: downloading' "$work/get.log") downloaded now"
log "modules ready after $(( $(date +%s) - started ))s; compiling (a line every 100 packages)"
go build -v -trimpath -o "$work/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger 2>&1 \
  | awk '/ / { print > "/dev/stderr"; next }  # compiler messages, as they are
         { n++; if (n % 100 == 0) printf "    %d packages compiled (%s)\n", n, $0 > "/dev/stderr" }'
[ -x "$work/jaeger" ] || die "go build produced no jaeger binary"
mv "$work/jaeger" "$JAEGER.tmp" && mv "$JAEGER.tmp" "$JAEGER"
log "built $JAEGER in $(( $(date +%s) - started ))s"
echo "$JAEGER"
