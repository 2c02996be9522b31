package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCrossNodeFlags: what --cross-node-* combinations parseFlags takes and refuses.
func TestCrossNodeFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // "" accepted
	}{
		{"off", nil, ""},
		{"static peers", []string{"--cross-node-vxlan", "vx", "--cross-node-underlay-ip", "100.65.0.1",
			"--cross-node-peers", "1:10.78.0.128/25=100.65.0.2"}, ""},
		{"with VPNs, blocks from the cluster", []string{"--cross-node-vxlan", "vx", "--cross-node-underlay-ip", "100.65.0.1",
			"--kubeconfig", "/dev/null", "--role", "node"}, ""},
		{"with VPNs, no static peers", []string{"--cross-node-vxlan", "vx", "--cross-node-underlay-ip", "100.65.0.1",
			"--kubeconfig", "/dev/null", "--cross-node-peers", "1:10.78.0.128/25=100.65.0.2"}, "--cross-node-peers is for static networks"},
		{"not on the cluster role", []string{"--cross-node-vxlan", "vx", "--cross-node-underlay-ip", "100.65.0.1",
			"--kubeconfig", "/dev/null", "--role", "cluster"}, "runs no datapath"},
		{"no underlay ip", []string{"--cross-node-vxlan", "vx"}, "needs --cross-node-underlay-ip"},
		{"loopback underlay ip", []string{"--cross-node-vxlan", "vx", "--cross-node-underlay-ip", "127.0.0.1"}, "non-loopback IPv4"},
		{"underlay ip without the device", []string{"--cross-node-underlay-ip", "100.65.0.1"}, "need --cross-node-vxlan"},
		{"teardown names only the device", []string{"--teardown", "--cross-node-vxlan", "vx"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			if len(tc.args) > 0 && tc.args[0] == "--cross-node-vxlan" {
				require.Equal(t, "vx", o.crossNodeDev)
				require.Equal(t, "100.65.0.1", o.crossNodeIP.String())
			}
		})
	}
}
