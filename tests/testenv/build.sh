#!/usr/bin/env bash
# Builds the binaries of the test clusters from the Go modules under tests/testenv/go/ and
# caches them under $CHOREOCTL_TESTENV_CACHE (default ~/.cache/choreoctl-testenv)/<k8s version>/.
#
# Idempotent: a binary whose --version already reports the pinned version is skipped, so a warm
# run takes a few seconds. A cold run on 2 cores takes about 10 minutes (see README "Testing").
# Builds kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes, stamped with
# their real version), etcd, kwok (+ its Stage files and Logs/Exec CRDs) and cert-manager's controller (+ its CRDs).
# cert-manager is optional: when it fails to build, the reason goes to cert-manager.error in the
# cache directory, the launcher reports it, and this script still succeeds.
set -euo pipefail

K8S_VERSION=v1.36.3
ETCD_VERSION=3.6.16
KWOK_VERSION=v0.8.0
CERT_MANAGER_VERSION=v1.21.2

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="${CHOREOCTL_TESTENV_CACHE:-$HOME/.cache/choreoctl-testenv}/$K8S_VERSION"
BIN="$ROOT/bin"
START=$(date +%s)

log() { printf '[testenv build %4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed; the test clusters are built from Go modules (Go >= 1.26)"
mkdir -p "$BIN" "$ROOT/stages" "$ROOT/crds/cert-manager"

# One build at a time (pytest workers or two shells may call this together).
exec 9>"$ROOT/.build.lock"
flock 9

# Never fetch another toolchain; static binaries; reproducible paths.
export GOTOOLCHAIN=local CGO_ENABLED=0

# current NAME EXPECTED: true when $BIN/NAME --version contains EXPECTED.
# (Output captured first: `| grep -q` would close the pipe early, and with pipefail the
# binary's SIGPIPE would fail the check at random.)
current() {
  local out
  [ -x "$BIN/$1" ] && out=$("$BIN/$1" --version 2>/dev/null) && [[ "$out" == *"$2"* ]]
}

# build NAME EXPECTED MODULE_DIR PACKAGE [LDFLAGS]: go build unless already current.
build() {
  local name=$1 expected=$2 dir=$3 pkg=$4 ldflags=${5:-"-s -w"} t0
  if current "$name" "$expected"; then
    log "$name: up to date ($expected)"
    return 0
  fi
  log "$name: building $pkg ..."
  t0=$(date +%s)
  (cd "$HERE/go/$dir" && go build -trimpath -ldflags "$ldflags" -o "$BIN/$name.tmp" "$pkg") || return 1
  mv -f "$BIN/$name.tmp" "$BIN/$name"
  current "$name" "$expected" || {
    log "$name: built, but '$BIN/$name --version' does not report $expected" >&2
    return 1
  }
  log "$name: built in $(( $(date +%s) - t0 )) s"
}

# Stamp the version the way Kubernetes' release build does, so /version and --version report
# v1.36.3 instead of v0.0.0-master (a misspelt -X target is silently ignored, hence the check).
K8S_LDFLAGS="-s -w"
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS="$K8S_LDFLAGS -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  K8S_LDFLAGS="$K8S_LDFLAGS -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
  K8S_LDFLAGS="$K8S_LDFLAGS -X $p.gitCommit=0000000000000000000000000000000000000000"
done

for c in kube-apiserver kube-controller-manager kube-scheduler; do
  build "$c" "Kubernetes $K8S_VERSION" k8s "k8s.io/kubernetes/cmd/$c" "$K8S_LDFLAGS" \
    || die "$c failed to build"
done
build etcd "etcd Version: $ETCD_VERSION" etcd go.etcd.io/etcd/server/v3 || die "etcd failed to build"
build kwok "kwok version $KWOK_VERSION" kwok sigs.k8s.io/kwok/cmd/kwok || die "kwok failed to build"

# kwok refuses to run without Stage objects; these are the ones kwokctl installs by default,
# plus its volume stages, which provision and bind a PV for every PVC of the default
# StorageClass (named "standard" here instead of kwok's "kwok-volume").
KWOK_DIR=$(cd "$HERE/go/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
S="$KWOK_DIR/kustomize/stage"
for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
  pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete \
  volume/fast/pvc-provision volume/fast/pv-bind volume/fast/pvc-delete volume/fast/pv-delete; do
  sed "s/'kwok-volume'/'standard'/" "$S/$f.yaml" >"$ROOT/stages/$(basename "$f").yaml"
done
log "kwok stages: $(ls "$ROOT/stages" | wc -l) files in $ROOT/stages"
# The CRDs of kwok's debugging server that the clusters enable (--enable-crds): Logs and
# ClusterLogs say which file serves a fake pod's logs, Exec and ClusterExec where
# `kubectl exec` runs (a local command).
mkdir -p "$ROOT/crds/kwok"
for c in logs clusterlogs execs clusterexecs; do
  cp "$KWOK_DIR/kustomize/crd/bases/kwok.x-k8s.io_$c.yaml" "$ROOT/crds/kwok/"
done
chmod u+w "$ROOT"/crds/kwok/*.yaml

if build cert-manager-controller "cert-manager-controller $CERT_MANAGER_VERSION" certmanager . \
  2>"$ROOT/cert-manager.error.tmp"; then
  CM_DIR=$(cd "$HERE/go/certmanager" && go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)
  cp "$CM_DIR"/deploy/crds/*cert-manager.io_*.yaml "$ROOT/crds/cert-manager/"
  chmod u+w "$ROOT"/crds/cert-manager/*.yaml
  rm -f "$ROOT/cert-manager.error" "$ROOT/cert-manager.error.tmp"
  log "cert-manager CRDs: $(ls "$ROOT/crds/cert-manager" | wc -l) files"
else
  mv -f "$ROOT/cert-manager.error.tmp" "$ROOT/cert-manager.error"
  log "WARNING: cert-manager-controller did not build; tests that need it will fail with:"
  sed 's/^/    /' "$ROOT/cert-manager.error" >&2
fi

log "done: binaries in $BIN"
