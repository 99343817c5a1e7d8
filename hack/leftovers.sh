#!/usr/bin/env bash
# What the end-to-end cluster could leave on the machine, recorded before and compared after:
# processes of the cluster's programs, mounts, network namespaces, network links, top-level
# cgroups, the host's iptables rules and kernel settings.
#
#   hack/leftovers.sh snapshot FILE               record the machine as it is now
#   hack/leftovers.sh compare FILE [MARKER...]    print every difference from FILE; exit 1 if
#                                                 there is one
#
# The test session takes a snapshot before it starts its cluster and compares after tearing it
# down. Other clusters may come and go on the same machine meanwhile: given MARKERs (the
# cluster's state directory, its nodes' cgroup and link names from `hack/node.sh names`), only
# differences that mention one of them count, and kernel settings, which name nobody, count
# unless another real node is up (the last one down restores them).
set -euo pipefail
HOST_STATE=${E2E_HOST_STATE:-$HOME/.cache/memorygraph/e2e/host}

# The programs a cluster runs (by executable, or by the script an interpreter runs); anything
# else on the machine may come and go.
PROGRAMS='^(etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok|kubelet|kube-proxy|containerd|containerd-shim-runc-v2|runc|coredns|minio|pause|memorygraph|memorygraph-operator|netns_forward.py)$'
# Kernel settings that are counters, not settings.
VOLATILE_SYSCTLS='^(fs\.(dentry-state|file-nr|inode-nr|inode-state|aio-nr|quota\..*)|kernel\.(ns_last_pid|random\.(uuid|entropy_avail)|pty\.nr)|net\.netfilter\.nf_conntrack_count) '

processes() {
    local pid exe args name
    for pid in /proc/[0-9]*; do
        exe=$(readlink "$pid/exe" 2>/dev/null) || continue
        args=$(tr '\0' ' ' <"$pid/cmdline" 2>/dev/null) || continue
        for name in "$exe" $args; do
            if [[ ${name##*/} =~ $PROGRAMS ]]; then
                echo "process ${pid#/proc/} ${name##*/}: $args"
                break
            fi
        done
    done
}

cgroups() {
    local h
    for h in $(awk '$9 == "cgroup" || $9 == "cgroup2" {print $5}' /proc/self/mountinfo); do
        # The machine's own per-command cgroups come and go all the time.
        find "$h" -mindepth 1 -maxdepth 1 -type d ! -name process_api -printf "cgroup %p\n"
    done
}

firewall() {
    local save
    for save in iptables-save ip6tables-save; do
        command -v "$save" >/dev/null || continue
        # Counters and the time of the dump change on their own.
        "$save" 2>/dev/null | sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]//' | sed "s/^/$save /"
    done
}

snapshot() {
    processes
    awk '{print "mount", $5, $9, $10}' /proc/self/mountinfo
    ip netns list 2>/dev/null | sed 's/^/netns /'
    ip -o link show | awk -F': ' '{print "link", $2}' | sed 's/@.*//'
    cgroups
    firewall
    sysctl -a 2>/dev/null | grep -Ev "$VOLATILE_SYSCTLS" | sed 's/^/sysctl /'
}

compare() {
    local file=$1
    shift
    local changes
    changes=$(diff <(sort "$file") <(snapshot | sort) | grep '^[<>]' || true)
    if [[ $# -gt 0 ]]; then
        local markers=() marker
        for marker in "$@"; do markers+=(-e "$marker"); done
        local settings=""
        if [[ -z $(ls -A "$HOST_STATE/sysctl-users" 2>/dev/null) ]]; then
            settings=$(grep '^. sysctl ' <<<"$changes" || true)
        fi
        changes=$({
            grep -F "${markers[@]}" <<<"$changes" || true
            [[ -z $settings ]] || echo "$settings"
        })
    fi
    if [[ -n $changes ]]; then
        echo "the machine changed (< before, > after):"
        echo "$changes"
        return 1
    fi
}

case ${1:-} in
snapshot) snapshot | sort >"${2:?file}" ;;
compare)
    shift
    compare "${1:?file}" "${@:2}"
    ;;
*)
    echo "usage: $0 snapshot FILE | compare FILE [MARKER...]" >&2
    exit 2
    ;;
esac
