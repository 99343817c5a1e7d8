#!/usr/bin/env bash
# Builds the end-to-end cluster: from the Go modules pinned in e2e/go.mod etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy and kwok, and CoreDNS
# from e2e/coredns, into $E2E_BIN (outside the repository); the real node's Debian packages
# (containerd, runc, buildah, debootstrap, ...) when they are missing; then the node's images
# (hack/images.sh). Nothing is downloaded prebuilt; Go's module and build caches and the image
# cache make a second run a quick up-to-date check. E2E_REAL_NODE=0 skips what only the real
# node needs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
E2E_BIN=${E2E_BIN:-$HOME/.cache/memorygraph/e2e/bin}
REAL_NODE=${E2E_REAL_NODE:-1}
# Debian packages of the real node: the runtime, CNI plugins, iptables for kube-proxy, the image
# builders, and gcc for the pod sandbox's pause program.
NODE_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack buildah debootstrap
    gcc libc6-dev util-linux iproute2 openssl curl)

install_node_packages() {
    local package missing=()
    for package in "${NODE_PACKAGES[@]}"; do
        dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$package")
    done
    [[ ${#missing[@]} -gt 0 ]] || return 0
    [[ $(id -u) == 0 ]] || {
        echo "the real node needs ${missing[*]} (apt-get install, as root)" >&2
        exit 1
    }
    echo "installing ${missing[*]} (Debian packages)" >&2
    apt-get update -q >/dev/null
    # No recommends: buildah's would add crun (which does not work with these machines' hybrid
    # cgroups) and fuse-overlayfs; the node uses runc and the kernel's overlayfs.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >/dev/null
}

[[ $REAL_NODE == 0 ]] || install_node_packages
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
    k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy \
    sigs.k8s.io/kwok/cmd/kwok
# Its package path ends in /v3, so it gets an explicit name.
go build -trimpath -o "$E2E_BIN/etcd" go.etcd.io/etcd/server/v3
# A module of its own (CoreDNS pins other versions of the libraries the control plane uses).
(cd coredns && go build -trimpath -o "$E2E_BIN/coredns" .)
echo "control plane built in $((SECONDS - start))s" >&2

# helm (the chart is installed with it) and the other test tools (minio, in an image below).
export TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/memorygraph/bin}
bash "$ROOT/hack/tools.sh"

if [[ $REAL_NODE != 0 ]]; then
    start=$SECONDS
    E2E_BIN=$E2E_BIN bash "$ROOT/hack/images.sh" >/dev/null
    echo "images ready in $((SECONDS - start))s" >&2
fi
