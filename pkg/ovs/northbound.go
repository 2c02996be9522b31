package ovs

import (
	"context"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/client"

	"github.com/sdncni/sdncni/pkg/ovs/model/nb"
)

// Names of the OVN Northbound rows that realise network n. Everything sdncni creates in
// NB is prefixed "sdncni-" so it never collides with rows of other OVN users.
func SwitchName(network string) string { return "sdncni-" + network }

// RouterName is the network's logical router.
func RouterName(network string) string { return "sdncni-" + network + "-lr" }

// RouterPortName is the router's port facing the network's switch (the pods' gateway).
func RouterPortName(network string) string { return "sdncni-" + network + "-lr-to-ls" }

// SwitchRouterPortName is the switch's port of type "router" peered with RouterPortName.
func SwitchRouterPortName(network string) string { return "sdncni-" + network + "-ls-to-lr" }

// Northbound is a client of the OVN Northbound database with a cache of the
// Logical_Switch, Logical_Switch_Port, Logical_Router, Logical_Router_Port,
// Logical_Router_Static_Route, Load_Balancer, ACL and Address_Set tables.
type Northbound struct {
	c   client.Client
	log logr.Logger
	// netMu serialises EnsureNetwork/DeleteNetwork in this process. Unique indexes on the
	// port names keep concurrent writers in other processes from duplicating a network.
	netMu sync.Mutex
}

// NewNorthbound connects to the OVN Northbound database at endpoint ("ssl:" needs
// WithTLS); the client reconnects by itself when the server restarts.
func NewNorthbound(ctx context.Context, endpoint string, log logr.Logger, opts ...ConnOption) (*Northbound, error) {
	dbModel, err := nb.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("nb model: %w", err)
	}
	dbModel.SetIndexes(northboundIndexes())
	c, err := connect(ctx, endpoint, dbModel, log, func(c client.Client) []client.MonitorOption {
		var (
			ls  nb.LogicalSwitch
			lsp nb.LogicalSwitchPort
			lr  nb.LogicalRouter
			lrp nb.LogicalRouterPort
			sr  nb.LogicalRouterStaticRoute
			lb  nb.LoadBalancer
			acl nb.ACL
			as  nb.AddressSet
		)
		return []client.MonitorOption{
			client.WithTable(&ls, &ls.Name, &ls.Ports, &ls.LoadBalancer, &ls.ACLs, &ls.ExternalIDs),
			client.WithTable(&lsp, &lsp.Name, &lsp.Type, &lsp.Addresses, &lsp.PortSecurity,
				&lsp.Options, &lsp.ExternalIDs, &lsp.Up),
			client.WithTable(&lr, &lr.Name, &lr.Ports, &lr.StaticRoutes, &lr.LoadBalancer, &lr.ExternalIDs),
			client.WithTable(&sr, &sr.IPPrefix, &sr.Nexthop, &sr.Policy, &sr.ExternalIDs),
			client.WithTable(&lrp, &lrp.Name, &lrp.MAC, &lrp.Networks, &lrp.ExternalIDs),
			client.WithTable(&lb, &lb.Name, &lb.Protocol, &lb.Vips, &lb.ExternalIDs),
			client.WithTable(&acl, &acl.Direction, &acl.Priority, &acl.Match, &acl.Action, &acl.Options, &acl.ExternalIDs),
			client.WithTable(&as, &as.Name, &as.Addresses, &as.ExternalIDs),
		}
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &Northbound{c: c, log: log}, nil
}

// Close disconnects; the Northbound must not be used afterwards.
func (n *Northbound) Close() { n.c.Close() }
