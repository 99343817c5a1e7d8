#!/usr/bin/env bash
# Builds the end-to-end control plane from the Go modules pinned in e2e/go.mod: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok, into $E2E_BIN
# (outside the repository). Nothing is downloaded prebuilt; Go's module and build caches make a
# second run a no-op apart from a quick up-to-date check.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
E2E_BIN=${E2E_BIN:-$HOME/.cache/memorygraph/e2e/bin}
mkdir -p "$E2E_BIN"
cd "$ROOT/e2e"

# The versions come from go.mod, so the stamped version is the one actually compiled.
module_version() { go list -m -f '{{.Version}}' "$1"; }
KUBE_VERSION=$(module_version k8s.io/kubernetes)
KWOK_VERSION=$(module_version sigs.k8s.io/kwok)
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}

# What `make` in kubernetes/kubernetes stamps (hack/lib/version.sh), for both the server's
# /version and `kubectl version`. "archive" is the tree state for a build from a source archive
# (the module zip) rather than a git checkout; the build date is left at its default so the
# link step stays cacheable.
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=archive"
done
ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBE_VERSION"

export GOFLAGS="-mod=mod -buildvcs=false"
start=$SECONDS
echo "building the control plane ($KUBE_VERSION, kwok $KWOK_VERSION) into $E2E_BIN" >&2
go build -trimpath -ldflags "$ldflags" -o "$E2E_BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl \
    sigs.k8s.io/kwok/cmd/kwok
# Its package path ends in /v3, so it gets an explicit name.
go build -trimpath -o "$E2E_BIN/etcd" go.etcd.io/etcd/server/v3
echo "control plane built in $((SECONDS - start))s" >&2

# helm (the chart is installed with it) and the other test tools.
TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/memorygraph/bin} bash "$ROOT/hack/tools.sh"
