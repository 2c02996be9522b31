package main

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"

	"github.com/sdncni/sdncni/pkg/crossnode"
	"github.com/sdncni/sdncni/pkg/datapath"
)

// startCrossNode switches the cross-node fast path on (--cross-node-vxlan) or off. On,
// it ensures the VXLAN device (MTU: its underlay link's minus the VXLAN overhead),
// attaches from_vxlan and starts probing the candidate peers; only the blocks of peers
// that answer are written into the datapath. Off, it clears the remote blocks and the
// switch, so a restart without the flag takes every pod's cross-node traffic back to
// Geneve on its next packet. The returned Peers is nil when off.
func startCrossNode(ctx context.Context, o *options, dp *datapath.Datapath, log logr.Logger) (*crossnode.Peers, error) {
	if o.crossNodeDev == "" {
		if err := dp.SetCrossNode(ctx, datapath.CrossNode{}); err != nil {
			return nil, err
		}
		if err := dp.SetRemoteBlocks(ctx, nil); err != nil {
			return nil, err
		}
		return nil, nil
	}
	_, mtu, err := linkMTUOf(o.crossNodeIP)
	if err != nil {
		return nil, fmt.Errorf("cross-node path: %w", err)
	}
	if _, err := crossnode.EnsureDevice(o.crossNodeDev, o.crossNodePort, mtu-crossnode.VXLANOverhead); err != nil {
		return nil, fmt.Errorf("cross-node path: %w", err)
	}
	if err := dp.SetCrossNode(ctx, datapath.CrossNode{On: true, VXLANIfName: o.crossNodeDev, Local: o.crossNodeIP}); err != nil {
		return nil, err
	}
	p := crossnode.New(crossnode.Config{Local: o.crossNodeIP, Port: o.crossNodePort}, dp, log)
	p.SetCandidates(o.crossNodePeers)
	log.Info("cross-node fast path on", "device", o.crossNodeDev, "underlayIP", o.crossNodeIP, "port", o.crossNodePort,
		"candidates", len(o.crossNodePeers))
	return p, nil
}
