// CoreDNS with only the plugins the end-to-end cluster's DNS uses: the Service and Pod records
// of the kubernetes plugin, a cache, and the health and readiness endpoints its Deployment
// probes. No forward plugin: names outside the cluster are refused, never looked up elsewhere.
// The full coredns command would compile every plugin (cloud DNS providers, tracing, ...).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// The subset of CoreDNS's own directive list (core/dnsserver/zdirectives.go), in its order:
	// a plugin sees the effects of every plugin after it.
	dnsserver.Directives = []string{"ready", "health", "errors", "cache", "kubernetes"}
}

func main() {
	coremain.Run()
}
