package ovs

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/client"

	"github.com/sdncni/sdncni/pkg/ovs/model/vswitch"
)

// VSwitch is a client of a node's Open_vSwitch database. It keeps a cache of the
// Open_vSwitch, Bridge, Port and Interface tables (only the columns sdncni reads; interface
// statistics are left out so counters do not churn the cache).
type VSwitch struct {
	c   client.Client
	log logr.Logger
}

// NewVSwitch connects to the Open_vSwitch database at endpoint ("unix:/path/db.sock" or
// "tcp:host:port"). The client reconnects by itself when the server restarts.
func NewVSwitch(ctx context.Context, endpoint string, log logr.Logger) (*VSwitch, error) {
	dbModel, err := vswitch.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("vswitch model: %w", err)
	}
	c, err := connect(ctx, endpoint, dbModel, log, func(c client.Client) []client.MonitorOption {
		var (
			ovs   vswitch.OpenvSwitch
			br    vswitch.Bridge
			port  vswitch.Port
			iface vswitch.Interface
		)
		return []client.MonitorOption{
			client.WithTable(&ovs, &ovs.Bridges, &ovs.ExternalIDs),
			client.WithTable(&br, &br.Name, &br.Ports, &br.DatapathType, &br.FailMode, &br.ExternalIDs),
			client.WithTable(&port, &port.Name, &port.Interfaces, &port.ExternalIDs),
			client.WithTable(&iface, &iface.Name, &iface.Type, &iface.Options, &iface.ExternalIDs, &iface.Ofport,
				&iface.MTURequest, &iface.Error),
		}
	})
	if err != nil {
		return nil, err
	}
	return &VSwitch{c: c, log: log}, nil
}

// Close disconnects; the VSwitch must not be used afterwards.
func (v *VSwitch) Close() { v.c.Close() }
