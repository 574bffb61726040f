#!/usr/bin/env bash
# Validates the deployment files offline, with real parsers and validators:
#   1. docker-compose.yml             -> `docker-compose config -q` (Debian's docker-compose)
#   2. the Kubernetes manifests       -> rendered with kustomize, every object checked by
#      kubeconform (strict: unknown fields fail) against
#        - the Kubernetes JSON schemas bundled in the PyPI package kubernetes-validate, and
#        - JSON schemas converted from the CRDs of Strimzi (Maven Central, io.strimzi:api
#          tests jar) and CloudNativePG (Go module proxy, config/crd/bases of the module zip).
#      A kind without a schema is an error, never skipped.
#
# Usage: deploy/validate.sh [--no-compose] [--compose FILE] [TARGET...]
#   TARGET: a folder with a kustomization.yaml (rendered), or a YAML file or folder of plain
#           manifests (validated as they are). Default: deploy/k8s/base deploy/k8s/overlays/production
# Env:    TEAMNL_TOOLS_DIR (default ~/.cache/teamnl/tools), K8S_VERSION (default 1.34.0)
#
# Idempotent: tools and schemas are installed once into TEAMNL_TOOLS_DIR (never into the
# repository) and reused; a warm run only renders and validates.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${TEAMNL_TOOLS_DIR:-$HOME/.cache/teamnl/tools}
K8S_VERSION=${K8S_VERSION:-1.34.0}
KUSTOMIZE_VERSION=v5.8.1
KUBECONFORM_VERSION=v0.7.0
KUBERNETES_VALIDATE_VERSION=1.37.0   # PyPI; bundles the JSON schemas of Kubernetes 1.x
STRIMZI_VERSION=0.50.0               # Maven Central io.strimzi:api (tests jar holds the CRDs)
CNPG_VERSION=v1.28.1                 # Go module github.com/cloudnative-pg/cloudnative-pg
PYYAML_VERSION=6.0.4

compose_file="$REPO/docker-compose.yml"
check_compose=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-compose) check_compose=0 ;;
    --compose) compose_file=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=("$REPO/deploy/k8s/base" "$REPO/deploy/k8s/overlays/production")

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'validate.sh: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------------- tools
mkdir -p "$TOOLS/bin" "$TOOLS/dl"
KUSTOMIZE=$TOOLS/bin/kustomize-$KUSTOMIZE_VERSION
KUBECONFORM=$TOOLS/bin/kubeconform-$KUBECONFORM_VERSION
go_install() {  # module@version destination
  command -v go >/dev/null || die "go is needed to install $1"
  local gobin; gobin=$(mktemp -d "$TOOLS/dl/gobin.XXXX")
  log "go install $1"
  (cd "$TOOLS" && GOBIN=$gobin go install "$1")
  mv "$gobin"/* "$2"; rmdir "$gobin"
}
[ -x "$KUSTOMIZE" ] || go_install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" "$KUSTOMIZE"
[ -x "$KUBECONFORM" ] || go_install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" "$KUBECONFORM"

VENV=$TOOLS/venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import yaml' 2>/dev/null; then
  log "creating $VENV (PyYAML $PYYAML_VERSION)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "PyYAML==$PYYAML_VERSION"
fi

# ----------------------------------------------------------------------------- compose
if [ "$check_compose" = 1 ]; then
  if ! command -v docker-compose >/dev/null; then
    [ "$(id -u)" = 0 ] || die "docker-compose is missing; run as root: apt-get install -y docker-compose"
    log "installing Debian package docker-compose"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  fi
  log "docker-compose config -q $compose_file"
  # --project-directory keeps relative bind mounts anchored at the file's folder.
  docker-compose -f "$compose_file" --project-directory "$(dirname "$compose_file")" config -q
  # `config` does not check that bind-mounted files exist: do it on its normalised output.
  docker-compose -f "$compose_file" --project-directory "$(dirname "$compose_file")" config \
    | "$VENV/bin/python" -c '
import os, sys, yaml
missing = []
for name, svc in (yaml.safe_load(sys.stdin).get("services") or {}).items():
    for v in svc.get("volumes") or []:
        src = v.get("source") if isinstance(v, dict) and v.get("type") == "bind" else (
            v.split(":")[0] if isinstance(v, str) and ":" in v else None)
        if src and src.startswith((".", "/")) and not os.path.exists(src):
            missing.append(f"{name}: {src}")
if missing:
    sys.exit("docker-compose: bind-mount sources missing: " + ", ".join(missing))
'
fi

# ----------------------------------------------------------------------------- schemas
SCHEMAS=$TOOLS/schemas
K8S_SCHEMAS=$SCHEMAS/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION
K8S_DIR=$K8S_SCHEMAS/v$K8S_VERSION-standalone-strict
if [ ! -f "$K8S_DIR/.done" ]; then
  log "Kubernetes $K8S_VERSION schemas from PyPI kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  whl_dir=$TOOLS/dl/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION
  ls "$whl_dir"/*.whl >/dev/null 2>&1 || "$VENV/bin/pip" download -q --disable-pip-version-check \
    --no-deps -d "$whl_dir" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  src=$TOOLS/dl/kv-src; rm -rf "$src"
  unzip -q -o "$whl_dir"/*.whl "kubernetes_validate/kubernetes-json-schema/v$K8S_VERSION-local-strict/*" -d "$src" \
    || die "kubernetes-validate $KUBERNETES_VALIDATE_VERSION has no schemas for Kubernetes $K8S_VERSION"
  rm -rf "$K8S_DIR"
  "$VENV/bin/python" "$REPO/deploy/k8s_schemas.py" kubernetes \
    "$src/kubernetes_validate/kubernetes-json-schema/v$K8S_VERSION-local-strict" "$K8S_DIR"
  rm -rf "$src"
  touch "$K8S_DIR/.done"
fi

CRD_DIR=$SCHEMAS/crds-strimzi-$STRIMZI_VERSION-cnpg-$CNPG_VERSION
if [ ! -f "$CRD_DIR/.done" ]; then
  crd_src=$TOOLS/dl/crd-src; rm -rf "$crd_src"; mkdir -p "$crd_src"
  log "Strimzi $STRIMZI_VERSION CRDs from Maven Central (io.strimzi:api:$STRIMZI_VERSION:jar:tests)"
  command -v mvn >/dev/null || die "mvn is needed for the Strimzi CRDs"
  m2=$(mvn -B -q help:evaluate -Dexpression=settings.localRepository -DforceStdout 2>/dev/null || true)
  [ -d "$m2" ] || m2=$HOME/.m2/repository
  jar=$m2/io/strimzi/api/$STRIMZI_VERSION/api-$STRIMZI_VERSION-tests.jar
  [ -f "$jar" ] || mvn -B -q dependency:get -Dartifact="io.strimzi:api:$STRIMZI_VERSION:jar:tests" -Dtransitive=false >&2
  [ -f "$jar" ] || die "could not fetch $jar"
  unzip -q -o "$jar" 'crds/*' -d "$crd_src/strimzi"
  log "CloudNativePG $CNPG_VERSION CRDs from the Go module proxy"
  zip=$(cd "$TOOLS" && go mod download -json "github.com/cloudnative-pg/cloudnative-pg@$CNPG_VERSION" \
        | sed -n 's/^[[:space:]]*"Zip": "\(.*\)",$/\1/p')
  [ -f "$zip" ] || die "could not download github.com/cloudnative-pg/cloudnative-pg@$CNPG_VERSION"
  unzip -q -o "$zip" "github.com/cloudnative-pg/cloudnative-pg@$CNPG_VERSION/config/crd/bases/*" -d "$crd_src/cnpg"
  rm -rf "$CRD_DIR"
  # v1beta2 first, then v1: each file carries every version it serves.
  "$VENV/bin/python" "$REPO/deploy/k8s_schemas.py" crds "$CRD_DIR" \
    "$crd_src"/strimzi/crds/v1beta2/*.yaml "$crd_src"/strimzi/crds/v1/*.yaml \
    "$crd_src"/cnpg/github.com/cloudnative-pg/cloudnative-pg@"$CNPG_VERSION"/config/crd/bases/*.yaml
  rm -rf "$crd_src"
  touch "$CRD_DIR/.done"
fi

# -------------------------------------------------------------------- render + validate
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
files=()
i=0
for t in "${targets[@]}"; do
  i=$((i + 1))
  if [ -f "$t/kustomization.yaml" ] || [ -f "$t/kustomization.yml" ] || [ -f "$t/Kustomization" ]; then
    log "kustomize build $t"
    "$KUSTOMIZE" build "$t" > "$work/$i.yaml"
    files+=("$work/$i.yaml")
  elif [ -e "$t" ]; then
    files+=("$t")
  else
    die "no such file or folder: $t"
  fi
done

log "kubeconform (Kubernetes $K8S_VERSION, strict) on ${targets[*]}"
set +e
out=$("$KUBECONFORM" -strict -summary -output text -kubernetes-version "$K8S_VERSION" \
  -schema-location "$K8S_SCHEMAS/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
  -schema-location "$CRD_DIR/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
  "${files[@]}" 2>&1)
rc=$?
set -e
printf '%s\n' "$out"
[ "$rc" = 0 ] || die "manifests are invalid (kubeconform exit $rc)"
# Guard against validating nothing (an empty render passes kubeconform).
echo "$out" | grep -Eq 'Summary: [1-9][0-9]* resources? found' || die "no Kubernetes object was validated"
echo "$out" | grep -Eq 'Skipped: 0$' || die "some objects were skipped"
log "all valid"
