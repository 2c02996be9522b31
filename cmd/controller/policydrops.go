package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/metrics"
	"github.com/sdncni/sdncni/pkg/openflow"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// openflowSocket is --openflow-socket, or the bridge's management socket in the run
// directory of a unix: --ovs-db (where ovs-vswitchd puts it).
func openflowSocket(o *options) (string, error) {
	if o.openflowSocket != "" {
		return o.openflowSocket, nil
	}
	path, ok := strings.CutPrefix(o.ovsDB, "unix:")
	if !ok {
		return "", fmt.Errorf("--ovs-db %s is not unix:, so --openflow-socket must be given", o.ovsDB)
	}
	return filepath.Join(filepath.Dir(path), o.bridge+".mgmt"), nil
}

// registerPolicyDrops registers the policy drop counters on reg once the Southbound is
// reachable: it connects in the background, retrying, so a Southbound that is down at
// start costs the counters only until it is back, not the node. The connection lives
// until ctx ends.
func registerPolicyDrops(ctx context.Context, o *options, vs *ovs.VSwitch, nb *ovs.Northbound, reg prometheus.Registerer, log logr.Logger) error {
	sock, err := openflowSocket(o)
	if err != nil {
		return err
	}
	go func() {
		for wait := time.Second; ; wait = min(2*wait, time.Minute) {
			sb, err := connectSouthbound(ctx, o, vs, log)
			if err == nil {
				reg.MustRegister(metrics.NewPolicyDropCollector(nb, sb, openflow.Client{Socket: sock}))
				log.Info("policy drop counters on", "openflow", sock)
				<-ctx.Done()
				sb.Close()
				return
			}
			log.Error(err, "policy drop counters off until the southbound connects", "retryIn", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
	return nil
}

func connectSouthbound(ctx context.Context, o *options, vs *ovs.VSwitch, log logr.Logger) (*ovs.Southbound, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	endpoint := o.sbDB
	if endpoint == "" {
		var err error
		if endpoint, err = vs.OVNRemote(ctx); err != nil {
			return nil, fmt.Errorf("southbound endpoint: %w", err)
		}
	}
	var opts []ovs.ConnOption
	if strings.HasPrefix(endpoint, "ssl:") {
		opts = append(opts, ovs.WithTLS(o.nbTLS))
	}
	sb, err := ovs.NewSouthbound(ctx, endpoint, log.WithName("sbdb"), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to ovn southbound: %w", err)
	}
	return sb, nil
}

// vpnNames names the VPN IDs of the fast path's maps with the networks this node serves.
func vpnNames(networks attach.Networks) func() map[uint32]string {
	return func() map[uint32]string {
		out := map[uint32]string{}
		for _, n := range networks.All() {
			out[n.ID] = n.Name
		}
		return out
	}
}
