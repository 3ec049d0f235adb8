package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// routerCluster is three routers whose embedded NATS servers form one
// cluster (-nats-cluster, -nats-routes), each with its own store, the
// stored subscriptions (and, with -redundant, the lease and the history
// log) kept by all three (-store-replicas 3).
type routerCluster struct {
	t                        *testing.T
	bin, dir                 string
	argsOf                   func(i int) []string
	natsURLs, routes, admins []string
	routers                  []*proc
}

// clusterStats is what the cluster tests read of a router's /stats.
type clusterStats struct {
	Gateways, Conns int
	Lead            *struct {
		Role      string
		Takeovers uint64
	}
}

// startCluster starts the three routers, each with args added.
func startCluster(t *testing.T, bin, dir string, args ...string) *routerCluster {
	return startClusterOf(t, bin, dir, 3, func(int) []string { return args })
}

// startClusterOf starts n routers, router i with argsOf(i) added.
func startClusterOf(t *testing.T, bin, dir string, n int, argsOf func(i int) []string) *routerCluster {
	c := &routerCluster{t: t, bin: bin, dir: dir, argsOf: argsOf}
	for range n {
		c.natsURLs = append(c.natsURLs, "nats://"+freePort(t))
		c.routes = append(c.routes, "nats://"+freePort(t))
		c.admins = append(c.admins, freePort(t))
	}
	for i := range n {
		c.routers = append(c.routers, c.start(i))
	}
	return c
}

// start starts router i (again, on its old store, if it ran before).
func (c *routerCluster) start(i int) *proc {
	args := append([]string{"-nats-addr", strings.TrimPrefix(c.natsURLs[i], "nats://"), "-admin", c.admins[i],
		"-nats-cluster", strings.TrimPrefix(c.routes[i], "nats://"), "-nats-routes", strings.Join(c.routes, ","),
		"-store", filepath.Join(c.dir, fmt.Sprint("store", i)), "-store-replicas", "3"}, c.argsOf(i)...)
	return start(c.t, c.bin+"/router", args...)
}

// all is every router's NATS URL, comma-separated.
func (c *routerCluster) all() string { return strings.Join(c.natsURLs, ",") }

// stats reads router i's /stats (zero if it does not answer).
func (c *routerCluster) stats(i int) (st clusterStats) {
	getJSON("http://"+c.admins[i]+"/stats", &st)
	return st
}

// leader is the router that says it leads (-redundant), or -1.
func (c *routerCluster) leader() int { return c.leaderOf(0, len(c.admins)) }

// leaderOf is the router among from..to-1 that says it leads, or -1.
func (c *routerCluster) leaderOf(from, to int) int {
	for i := from; i < to; i++ {
		if st := c.stats(i); st.Lead != nil && st.Lead.Role == "leader" {
			return i
		}
	}
	return -1
}

// each reports whether cond holds for every router's stats.
func (c *routerCluster) each(cond func(i int, st clusterStats) bool) bool {
	for i := range c.admins {
		if !cond(i, c.stats(i)) {
			return false
		}
	}
	return true
}
