#!/usr/bin/env bash
# A throwaway Kubernetes cluster for the end-to-end tests, from binaries that hack/e2e-build.sh
# builds from Go modules: etcd, kube-apiserver, kube-controller-manager and kube-scheduler on
# 127.0.0.1; kwok, which plays the kubelet for a few fake nodes (pods become Running/Ready, Job
# pods complete; no container ever runs); and one real node (hack/node.sh: containerd, kubelet,
# kube-proxy in a network namespace of its own) with cluster DNS, where pods really run.
#
#   hack/cluster.sh up      build if needed, start everything, print the kubeconfig path
#   hack/cluster.sh down    stop everything and delete the cluster's state
#   hack/cluster.sh env     print `export KUBECONFIG=...` for the running cluster
#
# State (certificates, etcd data, logs, kubeconfig) lives in $E2E_STATE, outside the repository.
# E2E_REAL_NODE=0 leaves the real node out (a control plane with kwok nodes only).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/e2e-env.sh
source "$ROOT/hack/e2e-env.sh"
E2E_BIN=${E2E_BIN:-$HOME/.cache/memorygraph/e2e/bin}
E2E_STATE=${E2E_STATE:-$HOME/.cache/memorygraph/e2e/cluster}
ETCD_PORT=${E2E_ETCD_PORT:-23790}
ETCD_PEER_PORT=${E2E_ETCD_PEER_PORT:-23800}
APISERVER_PORT=${E2E_APISERVER_PORT:-16443}
KWOK_NODES=${E2E_NODES:-2}
REAL_NODE=${E2E_REAL_NODE:-1}
REAL_NODE_NAME=real-node
# The ServiceMonitor CRD comes from this release of the Prometheus Operator module.
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}
KWOK_STAGES=(node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete)

PKI=$E2E_STATE/pki
LOGS=$E2E_STATE/logs
KUBECONFIG_OUT=$E2E_STATE/kubeconfig
SERVER=https://127.0.0.1:$APISERVER_PORT

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

kubectl() { "$E2E_BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" "$@"; }

# wait_for WHAT SECONDS COMMAND...: retry COMMAND once a second until it succeeds.
wait_for() {
    local what=$1 seconds=$2
    shift 2
    for ((i = 0; i < seconds; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    die "$what not ready after ${seconds}s (logs: $LOGS)"
}

# start NAME COMMAND...: run COMMAND in the background in its own process group.
start() {
    local name=$1
    shift
    setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$E2E_STATE/$name.pid"
    log "$name started (pid $!)"
}

# Self-signed CA, serving certificate, client certificates per component, service-account keys.
make_pki() {
    mkdir -p "$PKI"
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj /CN=memorygraph-e2e-ca \
        -keyout ca.key -out ca.crt 2>/dev/null
    cat >apiserver.ext <<EOF
subjectAltName=IP:127.0.0.1,IP:$KUBERNETES_SERVICE_IP,IP:$APISERVER_NODE_ADDRESS,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EOF
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout apiserver.key \
        -out apiserver.csr 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3 \
        -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    echo "extendedKeyUsage=clientAuth" >client.ext
    # The identities the bootstrap RBAC roles are bound to.
    client_cert admin "/CN=memorygraph-e2e-admin/O=system:masters"
    client_cert controller-manager /CN=system:kube-controller-manager
    client_cert scheduler /CN=system:kube-scheduler
    client_cert kwok "/CN=kwok-controller/O=system:masters"
    # The API server's own identity towards kubelets (logs, exec, port-forward).
    client_cert apiserver-kubelet-client /CN=kube-apiserver-kubelet-client
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    cd - >/dev/null
}

# client_cert NAME SUBJECT: a client certificate signed by the CA (run in $PKI).
client_cert() {
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3 \
        -extfile client.ext -out "$1.crt" 2>/dev/null
}

# write_kubeconfig NAME FILE: a kubeconfig with NAME's client certificate, certificates embedded.
write_kubeconfig() {
    local name=$1 file=$2
    local k=("$E2E_BIN/kubectl" --kubeconfig "$file")
    "${k[@]}" config set-cluster e2e --server "$SERVER" --certificate-authority "$PKI/ca.crt" \
        --embed-certs >/dev/null
    "${k[@]}" config set-credentials "$name" --client-certificate "$PKI/$name.crt" \
        --client-key "$PKI/$name.key" --embed-certs >/dev/null
    "${k[@]}" config set-context e2e --cluster e2e --user "$name" >/dev/null
    "${k[@]}" config use-context e2e >/dev/null
}

kwok_config() {
    local dir
    dir=$(cd "$ROOT/e2e" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
    local stage
    for stage in "${KWOK_STAGES[@]}"; do
        echo "---"
        cat "$dir/kustomize/stage/$stage.yaml"
    done
}

servicemonitor_crd() {
    local dir
    dir=$(cd "$E2E_STATE" && GOFLAGS= go mod download -json \
        "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -n $dir ]] || die "could not download the Prometheus Operator module"
    echo "$dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
}

# node ARGS...: hack/node.sh for this cluster.
node() {
    E2E_STATE=$E2E_STATE E2E_BIN=$E2E_BIN E2E_APISERVER_PORT=$APISERVER_PORT \
        bash "$ROOT/hack/node.sh" "$@"
}

# The real node, with what runs on it: the images (hack/images.sh; built when missing unless
# E2E_NO_BUILD is set), cluster DNS and the node's local volumes. The images it holds are listed
# in $E2E_STATE/images and, for the tests, in the ConfigMap kube-public/memorygraph-e2e-images.
real_node() {
    local check=""
    [[ -z ${E2E_NO_BUILD:-} ]] || check=--check
    bash "$ROOT/hack/images.sh" $check >"$E2E_STATE/images"
    local key ref archive
    local -A refs
    local archives=()
    while read -r key ref archive; do
        refs[$key]=$ref
        archives+=("$archive")
    done <"$E2E_STATE/images"

    kubectl apply -f - >/dev/null <<EOF
# The API server's identity towards kubelets may use their whole API (logs, exec, ...).
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kube-apiserver-kubelet-client
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kubelet-api-admin
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}
---
# Directories of the real node offered as volumes (hack/node.sh creates them with the node).
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: node-local
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
    PAUSE_IMAGE=${refs[pause]} node up "$REAL_NODE_NAME" "${archives[@]}"
    sed -e "s|@IMAGE@|${refs[coredns]}|" -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|" \
        -e "s|@CLUSTER_DNS_IP@|$CLUSTER_DNS_IP|" -e "s|@REAL_NODE_KEY@|$REAL_NODE_KEY|g" \
        -e "s|@REAL_NODE_VALUE@|$REAL_NODE_VALUE|g" "$ROOT/hack/coredns.yaml" |
        kubectl apply -f - >/dev/null
    kubectl create configmap memorygraph-e2e-images -n kube-public \
        --from-literal "memorygraph=${refs[memorygraph]}" \
        --from-literal "memorygraph-next=${refs[memorygraph-next]}" \
        --from-literal "minio=${refs[minio]}" >/dev/null
    kubectl -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null ||
        die "cluster DNS did not become ready (kubectl -n kube-system logs deploy/coredns)"
}

up() {
    if [[ -f $E2E_STATE/kube-apiserver.pid ]]; then
        die "a cluster is already running from $E2E_STATE (hack/cluster.sh down first)"
    fi
    local b
    for b in openssl curl go; do
        command -v "$b" >/dev/null || die "$b is needed to start the cluster"
    done
    local programs=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
    [[ $REAL_NODE == 0 ]] || programs+=(kubelet kube-proxy coredns)
    for b in "${programs[@]}"; do
        [[ -x $E2E_BIN/$b ]] && continue
        [[ -z ${E2E_NO_BUILD:-} ]] || die "$b is not built in $E2E_BIN (make e2e-build)"
        bash "$ROOT/hack/e2e-build.sh"
        break
    done
    rm -rf "$E2E_STATE"
    mkdir -p "$LOGS"
    make_pki

    start etcd "$E2E_BIN/etcd" --name e2e --data-dir "$E2E_STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync --log-level warn
    wait_for etcd 60 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

    start kube-apiserver "$E2E_BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address "$APISERVER_NODE_ADDRESS" \
        --secure-port "$APISERVER_PORT" \
        --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
        --client-ca-file "$PKI/ca.crt" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$PKI/sa.pub" \
        --service-account-signing-key-file "$PKI/sa.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --authorization-mode Node,RBAC \
        --enable-admission-plugins NodeRestriction,PodNodeSelector,PodTolerationRestriction \
        --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types InternalIP,Hostname \
        --profiling=false
    wait_for kube-apiserver 120 curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
        --key "$PKI/admin.key" "$SERVER/readyz"

    write_kubeconfig admin "$KUBECONFIG_OUT"
    write_kubeconfig controller-manager "$E2E_STATE/controller-manager.kubeconfig"
    write_kubeconfig scheduler "$E2E_STATE/scheduler.kubeconfig"
    write_kubeconfig kwok "$E2E_STATE/kwok.kubeconfig"

    start kube-controller-manager "$E2E_BIN/kube-controller-manager" \
        --kubeconfig "$E2E_STATE/controller-manager.kubeconfig" \
        --secure-port 0 --leader-elect=false \
        --use-service-account-credentials \
        --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
        --enable-hostpath-provisioner \
        --horizontal-pod-autoscaler-sync-period 5s \
        --profiling=false
    start kube-scheduler "$E2E_BIN/kube-scheduler" \
        --kubeconfig "$E2E_STATE/scheduler.kubeconfig" \
        --secure-port 0 --leader-elect=false --profiling=false
    kwok_config >"$E2E_STATE/kwok.yaml"
    # Leases are the nodes' heartbeat (the heartbeat-with-lease stage); without
    # --node-lease-duration-seconds kwok renews none and the node controller marks the nodes
    # NotReady after every grace period.
    start kwok "$E2E_BIN/kwok" --kubeconfig "$E2E_STATE/kwok.kubeconfig" \
        --config "$E2E_STATE/kwok.yaml" \
        --manage-all-nodes=false \
        --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
        --cidr 10.244.0.0/16 --node-ip 127.0.0.1 \
        --node-lease-duration-seconds 40

    local i
    for ((i = 0; i < KWOK_NODES; i++)); do
        kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
    done
    # Dynamic volumes: the controller-manager's hostPath provisioner makes a directory per
    # claim under /tmp/hostpath_pv and deletes it with the claim.
    kubectl apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
    kubectl apply --server-side -f "$(servicemonitor_crd)" >/dev/null
    wait_for "fake nodes" 60 kubectl wait --for=condition=Ready node --all --timeout=1s
    wait_for "default service account" 60 kubectl get serviceaccount default -n default
    kubectl wait --for=condition=Established crd/servicemonitors.monitoring.coreos.com \
        --timeout=60s >/dev/null
    local real=""
    if [[ $REAL_NODE != 0 ]]; then
        real_node
        real=" and real node $REAL_NODE_NAME"
    fi
    log "ready: $(kubectl version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' |
        tail -1) with $KWOK_NODES kwok nodes$real"
    echo "$KUBECONFIG_OUT"
}

down() {
    local name pid failed=0
    # The nodes first, while the API server can still be told they are gone.
    for name in "$E2E_STATE"/nodes/*; do
        [[ -d $name ]] || continue
        node down "$(basename "$name")" || failed=1
    done
    for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
        [[ -f $E2E_STATE/$name.pid ]] || continue
        pid=$(cat "$E2E_STATE/$name.pid")
        # Each component leads its own process group (setsid), so this reaches only it.
        kill -TERM -- "-$pid" 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
        rm -f "$E2E_STATE/$name.pid"
    done
    rm -rf "$E2E_STATE"
    [[ $failed == 0 ]] || die "a real node left things behind (listed above)"
    log "down"
}

case ${1:-} in
up) up ;;
down) down ;;
env) echo "export KUBECONFIG=$KUBECONFIG_OUT" ;;
*)
    echo "usage: $0 up|down|env" >&2
    exit 2
    ;;
esac
