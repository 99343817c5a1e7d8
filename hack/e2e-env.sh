# Addresses and names the end-to-end cluster's scripts share (sourced by hack/cluster.sh and
# hack/node.sh, never run on its own).
#
# Every address below exists only inside a network namespace a real node's script creates, or
# on the host end of that namespace's veth pair; nothing is added to the host's loopback.

SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
CLUSTER_DNS_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local

# The API server as every real node sees it: an address on the loopback of the node's own
# namespace, relayed by hack/netns_forward.py to the API server on the host's 127.0.0.1. The API
# server advertises it, so the `kubernetes` Service leads there from every pod.
APISERVER_NODE_ADDRESS=10.231.255.254

# Real node number K (1..250, leased machine-wide by hack/node.sh): its veth pair is
# 10.231.K.0/30 (host end .1, node .2) and its pods get 10.232.K.0/24.
NODE_LINK_PREFIX=10.231
POD_PREFIX=10.232
POD_CIDR=10.232.0.0/16

# Real nodes carry this label and a NoSchedule taint of the same key and value: pods land there
# only when they ask to (the kwok nodes run no containers, so an image that exists nowhere is
# fine there and fatal here).
REAL_NODE_KEY=memorygraph.io/node
REAL_NODE_VALUE=real
