#!/usr/bin/env bash
# A real Kubernetes node beside the kwok nodes of the end-to-end cluster: Debian's containerd and
# runc run its pods, a kubelet and kube-proxy built from the control plane's own
# k8s.io/kubernetes module (hack/e2e-build.sh) join it to the API server of $E2E_STATE.
#
#   hack/node.sh up NAME [IMAGE_ARCHIVE...]   start node NAME, import the images, wait for Ready
#   hack/node.sh down NAME                    stop it and undo everything it changed
#   hack/node.sh leftovers NAME               print what of node NAME is still on the machine;
#                                             exit 1 if anything is
#   hack/node.sh names NAME                   the names node NAME gives its cgroup and veth
#
# The node changes nothing on the machine that `down` does not take back:
# - network: it lives in a network namespace of its own, joined to the host by a veth pair.
#   The node's address, its pods' and every Service address exist only in there. The host end of
#   the pair holds the one address outside: the source of the API server's connections to the
#   kubelet (logs, exec, port-forward). The node cannot open a connection to the host (a filter
#   rule in its namespace); it reaches the API server through hack/netns_forward.py, which relays
#   an address of the node's namespace to the API server on the host's 127.0.0.1.
# - files and mounts: containerd, the kubelet, kube-proxy and the CNI plugins run in a mount
#   namespace of their own in which /run is a fresh tmpfs and /var/lib and /var/log are the node's
#   directories here, so they keep their usual paths and every mount they make dies with the
#   namespace. Nothing is written outside $E2E_STATE.
# - processes and cgroups: a cgroup /mg-e2e-ID in every hierarchy holds the pods (the kubelet's
#   cgroupRoot) and, in its "node" child of the pids hierarchy, every process the node started,
#   so `down` stops exactly those and nothing else.
# - sysctls: the kubelet sets six kernel-wide values when it starts; the first node up records
#   them and the last one down writes them back.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/e2e-env.sh
source "$ROOT/hack/e2e-env.sh"
E2E_BIN=${E2E_BIN:-$HOME/.cache/memorygraph/e2e/bin}
E2E_STATE=${E2E_STATE:-$HOME/.cache/memorygraph/e2e/cluster}
# Bookkeeping shared by every node on the machine, whichever cluster it belongs to: the leased
# link numbers and the kubelet's sysctls as they were before the first node.
HOST_STATE=${E2E_HOST_STATE:-$HOME/.cache/memorygraph/e2e/host}
APISERVER_PORT=${E2E_APISERVER_PORT:-16443}
PKI=$E2E_STATE/pki
CGROUP_FS=/sys/fs/cgroup
# The values the kubelet sets (setupKernelTunables in pkg/kubelet/cm/container_manager_linux.go).
KUBELET_SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
    kernel/keys/root_maxkeys kernel/keys/root_maxbytes)
# Local volumes the node offers (StorageClass node-local); a released one is not reused.
NODE_VOLUMES=${E2E_NODE_VOLUMES:-12}

log() { echo "node $NAME: $*" >&2; }
die() {
    log "$*"
    exit 1
}

kubectl() { "$E2E_BIN/kubectl" --kubeconfig "$E2E_STATE/kubeconfig" "$@"; }

# names NAME: every machine-wide name of the node, derived from where its state lives so that
# `down` finds them again even when that state is gone.
names() {
    NODE=$E2E_STATE/nodes/$NAME
    ID=$(printf '%s' "$NODE" | sha256sum | cut -c1-8)
    CGROUP=mg-e2e-$ID
    VETH_HOST=mge${ID}h
    VETH_NODE=mge${ID}n
    TRACK=$CGROUP_FS/pids/$CGROUP/node
    LOGS=$NODE/logs
}

# with_lock COMMAND...: run COMMAND holding the machine-wide lock of the node bookkeeping.
with_lock() {
    mkdir -p "$HOST_STATE/leases" "$HOST_STATE/sysctl-users"
    (
        flock 9
        "$@"
    ) 9>"$HOST_STATE/lock"
}

# A lease or sysctl registration is stale when its node's cgroup is gone: `down` never ran (the
# machine restarted, or the state was deleted by hand).
stale() { [[ ! -d $CGROUP_FS/pids/$(cat "$1") ]]; }

lease_link() {
    local k file
    for file in "$HOST_STATE"/leases/*; do
        [[ -e $file ]] && stale "$file" && rm -f "$file"
    done
    for ((k = 1; k <= 250; k++)); do
        file=$HOST_STATE/leases/$k
        [[ -e $file ]] && continue
        # An address of the range already on the machine: someone else's, leave it.
        [[ -z $(ip -4 -o addr show to "$NODE_LINK_PREFIX.$k.0/30") ]] || continue
        echo "$CGROUP" >"$file"
        echo "$k" >"$NODE/link"
        return 0
    done
    die "no free link number in $NODE_LINK_PREFIX.1-250.0/30"
}

release_link() {
    local file
    for file in "$HOST_STATE"/leases/*; do
        [[ -e $file && $(cat "$file") == "$CGROUP" ]] && rm -f "$file"
    done
    return 0
}

# The first node records the kubelet's sysctls as the machine has them; the last one restores.
# A record without users is from a node that never came down: its values are the machine's own
# (the ones there now are its kubelet's), so it stays.
register_sysctls() {
    local file key
    for file in "$HOST_STATE"/sysctl-users/*; do
        [[ -e $file ]] && stale "$file" && rm -f "$file"
    done
    if [[ ! -f $HOST_STATE/sysctls.orig ]]; then
        for key in "${KUBELET_SYSCTLS[@]}"; do
            echo "$key $(cat "/proc/sys/$key")"
        done >"$HOST_STATE/sysctls.orig"
    fi
    echo "$CGROUP" >"$HOST_STATE/sysctl-users/$CGROUP"
}

unregister_sysctls() {
    rm -f "$HOST_STATE/sysctl-users/$CGROUP"
    [[ -z $(ls -A "$HOST_STATE/sysctl-users") && -f $HOST_STATE/sysctls.orig ]] || return 0
    local key value
    while read -r key value; do
        echo "$value" >"/proc/sys/$key"
    done <"$HOST_STATE/sysctls.orig"
    rm -f "$HOST_STATE/sysctls.orig"
    log "kernel settings restored"
}

# cgroup_hierarchies: every mounted cgroup hierarchy (v1 controllers, named ones and the unified
# hierarchy of a hybrid setup); the node has a cgroup in each.
cgroup_hierarchies() {
    awk '$9 == "cgroup" || $9 == "cgroup2" {print $5}' /proc/self/mountinfo
}

make_cgroups() {
    local h
    for h in $(cgroup_hierarchies); do
        mkdir -p "$h/$CGROUP"
        # A new cpuset cgroup starts with no CPUs and no memory nodes: nothing could run in it.
        if [[ -f $h/$CGROUP/cpuset.cpus ]]; then
            cat "$h/cpuset.cpus" >"$h/$CGROUP/cpuset.cpus"
            cat "$h/cpuset.mems" >"$h/$CGROUP/cpuset.mems"
        fi
    done
    mkdir -p "$TRACK"
}

# node_pids: every process in the node's cgroup tree (pods included).
node_pids() {
    [[ -d $CGROUP_FS/pids/$CGROUP ]] || return 0
    find "$CGROUP_FS/pids/$CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null
}

remove_cgroups() {
    local h
    for h in $(cgroup_hierarchies); do
        [[ -d $h/$CGROUP ]] || continue
        # Children first; a cgroup whose last process is still exiting refuses, so retry.
        for ((i = 0; i < 20; i++)); do
            find "$h/$CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [[ -d $h/$CGROUP ]] || break
            sleep 0.5
        done
    done
}

# start NAME COMMAND...: COMMAND in the background, in its own session, inside the node's
# tracking cgroup (joined before exec, so everything it starts is in there too).
start() {
    local name=$1
    shift
    # shellcheck disable=SC2016  # expanded by the inner shell
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$TRACK/cgroup.procs" "$@" \
        >"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$NODE/$name.pid"
}

wait_for() {
    local what=$1 seconds=$2
    shift 2
    for ((i = 0; i < seconds * 2; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    die "$what not ready after ${seconds}s (logs: $LOGS)"
}

# The node's namespaces, network and mount, held by a process for the others to join with
# nsenter. Both die with the last process in them: nothing names them on the machine.
start_holder() {
    mkdir -p "$NODE/var-lib" "$NODE/var-log"
    # shellcheck disable=SC2016
    start holder unshare --net --mount --propagation slave -- bash -c '
        set -e
        mount -t tmpfs -o mode=0755 node-run /run
        mount --bind "$1/var-lib" /var/lib
        mount --bind "$1/var-log" /var/log
        exec sleep infinity' _ "$NODE"
    HOLDER=$(cat "$NODE/holder.pid")
    wait_for "the node's namespaces" 10 nsenter --target "$HOLDER" --mount -- mountpoint -q /var/log
}

make_network() {
    local k
    k=$(cat "$NODE/link")
    NODE_IP=$NODE_LINK_PREFIX.$k.2
    HOST_IP=$NODE_LINK_PREFIX.$k.1
    POD_SUBNET=$POD_PREFIX.$k.0/24
    ip link add "$VETH_HOST" type veth peer name "$VETH_NODE" netns "$HOLDER"
    ip addr add "$HOST_IP/30" dev "$VETH_HOST"
    ip link set "$VETH_HOST" up
    local n=(nsenter --target "$HOLDER" --net --mount --)
    "${n[@]}" ip link set lo up
    "${n[@]}" ip addr add "$NODE_IP/30" dev "$VETH_NODE"
    "${n[@]}" ip link set "$VETH_NODE" up
    "${n[@]}" ip addr add "$APISERVER_NODE_ADDRESS/32" dev lo
    # Processes of the node connect to Service addresses, which kube-proxy rewrites after the
    # route lookup: the range needs a route. There is no default route, so nothing else leaves.
    "${n[@]}" ip route add "$SERVICE_CIDR" dev "$VETH_NODE"
    # Nothing in the namespace opens a connection through the veth: the host is reached only
    # through the relay, and a Service address kube-proxy does not know goes nowhere. Answers to
    # the API server's connections to the kubelet pass.
    local rule=(-o "$VETH_NODE" -m conntrack ! --ctstate ESTABLISHED,RELATED -j REJECT)
    "${n[@]}" iptables -w -A OUTPUT "${rule[@]}"
    "${n[@]}" iptables -w -A FORWARD "${rule[@]}"
}

# node_cert NAME SUBJECT: a client certificate signed by the cluster CA, in the node's directory.
node_cert() {
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$NODE/$1.key" -out "$NODE/$1.csr" \
        2>/dev/null
    openssl x509 -req -in "$NODE/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
        -CAcreateserial -CAserial "$NODE/ca.srl" -days 3 -extfile "$PKI/client.ext" \
        -out "$NODE/$1.crt" 2>/dev/null
}

node_kubeconfig() {
    local name=$1 k=("$E2E_BIN/kubectl" --kubeconfig "$NODE/$1.kubeconfig")
    "${k[@]}" config set-cluster e2e --server "https://$APISERVER_NODE_ADDRESS:$APISERVER_PORT" \
        --certificate-authority "$PKI/ca.crt" --embed-certs >/dev/null
    "${k[@]}" config set-credentials "$name" --client-certificate "$NODE/$name.crt" \
        --client-key "$NODE/$name.key" --embed-certs >/dev/null
    "${k[@]}" config set-context e2e --cluster e2e --user "$name" >/dev/null
    "${k[@]}" config use-context e2e >/dev/null
}

write_configs() {
    mkdir -p "$NODE/cni"
    cat >"$NODE/cni/10-pods.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "pods",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
    # Plugins nobody uses are off: the opt plugin would create /opt/containerd.
    cat >"$NODE/containerd.toml" <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$NODE/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Without CAP_SYS_RESOURCE a pod's oom_score_adj may not go below containerd's own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni"
EOF
    # Pods get the cluster's DNS and nothing of the host's resolver configuration.
    echo "options ndots:5" >"$NODE/resolv.conf"
    cat >"$NODE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$NODE/containerd.sock
# The machines have cgroup v1 only.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP
clusterDNS: [$CLUSTER_DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $NODE/resolv.conf
registerWithTaints:
  - {key: $REAL_NODE_KEY, value: $REAL_NODE_VALUE, effect: NoSchedule}
# Images cannot be pulled again (there is no registry): never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
failSwapOn: false
volumePluginDir: /var/lib/kubelet/volume-plugins
serializeImagePulls: false
maxPods: 60
EOF
    cat >"$NODE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $NODE/kube-proxy.kubeconfig}
hostnameOverride: $NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Zero leaves the kernel's conntrack settings alone (the table size is machine-wide).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# Local volumes: directories of the node offered as PersistentVolumes (no provisioner). Unlike
# the hostPath provisioner's directories they get the pod's fsGroup, so a non-root pod can write.
make_volumes() {
    local i
    [[ $NODE_VOLUMES -gt 0 ]] || return 0
    for ((i = 0; i < NODE_VOLUMES; i++)); do
        mkdir -p "$NODE/volumes/$i"
        cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $NAME-volume-$i
  labels: {memorygraph.io/node-name: $NAME}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: node-local
  local: {path: $NODE/volumes/$i}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [$NAME]}
EOF
    done | kubectl apply -f - >/dev/null
}

up() {
    names
    [[ ! -e $NODE/holder.pid ]] || die "already up ($NODE); hack/node.sh down $NAME first"
    local b
    for b in containerd containerd-shim-runc-v2 runc ctr iptables conntrack nsenter unshare \
        openssl; do
        command -v "$b" >/dev/null || die "$b is missing (make e2e-build installs it)"
    done
    [[ -x /usr/lib/cni/bridge ]] || die "the CNI plugins are missing (containernetworking-plugins)"
    # The node's processes are found through the cgroup v1 pids hierarchy (what these machines
    # have); a cgroup v2-only machine is not supported.
    [[ -d $CGROUP_FS/pids ]] || die "no cgroup v1 pids hierarchy at $CGROUP_FS/pids"
    for b in kubelet kube-proxy kubectl; do
        [[ -x $E2E_BIN/$b ]] || die "$b is not built in $E2E_BIN (make e2e-build)"
    done
    [[ -n ${PAUSE_IMAGE:-} ]] || die "PAUSE_IMAGE (the pod sandbox image) is not set"
    mkdir -p "$LOGS"
    # mount(8) keeps a table in /run/mount and creates that directory when it is missing: the
    # node's mounts (the kubelet's included) keep theirs here instead.
    export LIBMOUNT_UTAB=$NODE/mount-utab
    with_lock lease_link
    with_lock register_sysctls
    make_cgroups
    start_holder
    make_network
    log "namespaces held by process $HOLDER, node address $NODE_IP, pods $POD_SUBNET"

    start relay python3 "$ROOT/hack/netns_forward.py" --netns "/proc/$HOLDER/ns/net" \
        "$APISERVER_NODE_ADDRESS:$APISERVER_PORT=$APISERVER_PORT"
    node_cert kubelet "/CN=system:node:$NAME/O=system:nodes"
    node_cert kube-proxy /CN=system:kube-proxy
    node_kubeconfig kubelet
    node_kubeconfig kube-proxy
    write_configs

    # Into the node's network and mount namespaces.
    local in_node=(nsenter --target "$HOLDER" --mount --net --)
    start containerd "${in_node[@]}" containerd --config "$NODE/containerd.toml"
    wait_for containerd 30 ctr --address "$NODE/containerd.sock" version
    local archive
    for archive in "$@"; do
        ctr --address "$NODE/containerd.sock" -n k8s.io images import "$archive" >/dev/null
    done
    log "containerd up with $# images"
    start kube-proxy "${in_node[@]}" "$E2E_BIN/kube-proxy" --config "$NODE/kube-proxy.yaml"
    start kubelet "${in_node[@]}" "$E2E_BIN/kubelet" --config "$NODE/kubelet.yaml" \
        --kubeconfig "$NODE/kubelet.kubeconfig" --hostname-override "$NAME" \
        --node-ip "$NODE_IP" --node-labels "$REAL_NODE_KEY=$REAL_NODE_VALUE"
    wait_for "the node's registration" 60 kubectl get node "$NAME"
    wait_for "node Ready" 120 kubectl wait --for=condition=Ready "node/$NAME" --timeout=1s
    make_volumes
    log "Ready"
}

# stop_all: every process of the node, the kubelet first so that it restarts nothing.
stop_all() {
    local name pid
    for name in kubelet kube-proxy; do
        [[ -f $NODE/$name.pid ]] || continue
        pid=$(cat "$NODE/$name.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
    done
    # Containers, shims, containerd, the relay and the namespace holder: all in the cgroup tree.
    for ((i = 0; i < 60; i++)); do
        pids=$(node_pids)
        [[ -n $pids ]] || break
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 0.5
    done
    [[ -z $(node_pids) ]] || log "processes that would not stop: $(node_pids | tr '\n' ' ')"
    rm -f "$NODE"/*.pid
}

down() {
    names
    if [[ -d $NODE ]] && kubectl get node "$NAME" --request-timeout=5s >/dev/null 2>&1; then
        kubectl delete node "$NAME" --wait=false --request-timeout=10s >/dev/null 2>&1 || true
        kubectl delete pv -l "memorygraph.io/node-name=$NAME" --wait=false --request-timeout=10s \
            >/dev/null 2>&1 || true
    fi
    stop_all
    remove_cgroups
    # The network namespace went with its last process, and the host end of the veth pair goes
    # with it once the kernel gets to it.
    for ((i = 0; i < 20; i++)); do
        ip link show "$VETH_HOST" >/dev/null 2>&1 || break
        sleep 0.5
    done
    if ip link show "$VETH_HOST" >/dev/null 2>&1; then ip link delete "$VETH_HOST"; fi
    with_lock release_link
    with_lock unregister_sysctls
    rm -rf "$NODE"
    if ! leftovers >&2; then
        log "left things behind (above)"
        return 1
    fi
    log "down"
}

# leftovers: anything of the node still on the machine, one line each; status 1 if any.
leftovers() {
    names
    local found=() pid h line file
    for pid in $(node_pids) $(pgrep -f -- "$NODE" || true); do
        found+=("process $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null || true)")
    done
    for h in $(cgroup_hierarchies); do
        if [[ -d $h/$CGROUP ]]; then found+=("cgroup $h/$CGROUP"); fi
    done
    while read -r line; do
        found+=("mount: $line")
    done < <(grep -F "$NODE" /proc/self/mountinfo || true)
    if ip link show "$VETH_HOST" >/dev/null 2>&1; then
        found+=("link $VETH_HOST (its peer keeps the node's network namespace alive)")
    fi
    for file in "$HOST_STATE"/leases/* "$HOST_STATE"/sysctl-users/*; do
        if [[ -f $file && $(cat "$file") == "$CGROUP" ]]; then found+=("registration $file"); fi
    done
    if [[ -z $(ls -A "$HOST_STATE/sysctl-users" 2>/dev/null) && -f $HOST_STATE/sysctls.orig ]]; then
        found+=("kernel settings not restored: $HOST_STATE/sysctls.orig")
    fi
    for line in "${found[@]}"; do echo "$line"; done
    [[ ${#found[@]} -eq 0 ]]
}

ACTION=${1:-}
NAME=${2:-}
[[ -n $NAME ]] || {
    echo "usage: $0 up NAME [IMAGE_ARCHIVE...] | down NAME | leftovers NAME | names NAME" >&2
    exit 2
}
shift 2
case $ACTION in
up) up "$@" ;;
down) down ;;
leftovers) leftovers ;;
names)
    names
    echo "$CGROUP $VETH_HOST"
    ;;
*)
    echo "usage: $0 up NAME [IMAGE_ARCHIVE...] | down NAME | leftovers NAME | names NAME" >&2
    exit 2
    ;;
esac
