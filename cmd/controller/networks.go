package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"

	"github.com/sdncni/sdncni/pkg/attach"
)

// networksFile is the optional --networks-file: extra isolated networks and the
// namespaces that land in them. Namespaces not listed land in the flags' network.
//
//	{"networks": [{"name": "tenant-b", "id": 2, "cidr": "10.77.0.0/24", "mtu": 1400,
//	               "fastPath": true, "namespaces": ["b1", "b2"]}]}
type networksFile struct {
	Networks []struct {
		Name       string   `json:"name"`
		ID         uint32   `json:"id"`
		CIDR       string   `json:"cidr"`
		Gateway    string   `json:"gateway,omitempty"`
		MTU        int      `json:"mtu,omitempty"`
		FastPath   *bool    `json:"fastPath,omitempty"`
		Namespaces []string `json:"namespaces,omitempty"`
	} `json:"networks"`
}

func buildNetworks(o *options) (*attach.StaticNetworks, error) {
	def := attach.Network{Name: o.network, ID: uint32(o.networkID), Prefix: o.cidr, Gateway: o.gateway,
		MTU: o.mtu, FastPath: true}
	if o.allocRange.IsValid() {
		def.Ranges = []netip.Prefix{o.allocRange}
	}
	nets := []attach.Network{def}
	nsMap := map[string][]string{}
	if o.networksFile != "" {
		data, err := os.ReadFile(o.networksFile)
		if err != nil {
			return nil, fmt.Errorf("read networks file: %w", err)
		}
		var f networksFile
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("parse networks file %s: %w", o.networksFile, err)
		}
		for _, e := range f.Networks {
			p, err := netip.ParsePrefix(e.CIDR)
			if err != nil {
				return nil, fmt.Errorf("networks file: network %s: %w", e.Name, err)
			}
			n := attach.Network{Name: e.Name, ID: e.ID, Prefix: p, Gateway: p.Addr().Next(), MTU: e.MTU, FastPath: true}
			if e.Gateway != "" {
				if n.Gateway, err = netip.ParseAddr(e.Gateway); err != nil {
					return nil, fmt.Errorf("networks file: network %s: gateway: %w", e.Name, err)
				}
			}
			if n.MTU == 0 {
				n.MTU = o.mtu
			}
			if e.FastPath != nil {
				n.FastPath = *e.FastPath
			}
			nets = append(nets, n)
			nsMap[n.Name] = e.Namespaces
		}
	}
	s, err := attach.NewStaticNetworks(def.Name, nets, nsMap)
	if err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	return s, nil
}
