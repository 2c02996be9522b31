package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJudgeCrossPath(t *testing.T) {
	const moved = 1_000_000
	before := snapshot{"ovs": {RxBytes: 500, TxBytes: 500}, ovsULLink: {RxBytes: 10, TxBytes: 10}, "vxlan": {}}
	tests := []struct {
		name  string
		after snapshot
		want  string
	}{
		{"geneve: OVS received it and ul0 carried it encapsulated",
			snapshot{"ovs": {RxBytes: 500 + moved + 900, TxBytes: 500 + moved}, ovsULLink: {RxBytes: 10 + 4000, TxBytes: 10 + moved + 60000}, "vxlan": {}},
			pathGeneve},
		{"kernel VXLAN: a VXLAN device carried it, OVS saw ARP at most",
			snapshot{"ovs": {RxBytes: 600, TxBytes: 600}, ovsULLink: {RxBytes: 10, TxBytes: 10}, "vxlan": {TxBytes: moved + 30000, RxBytes: 5000}},
			pathKernelVXLAN},
		{"VXLAN device busy but OVS too: not the kernel path",
			snapshot{"ovs": {RxBytes: 500 + moved, TxBytes: 500}, ovsULLink: {RxBytes: 10, TxBytes: 10}, "vxlan": {TxBytes: moved}},
			""},
		{"OVS received it but ul0 did not carry it",
			snapshot{"ovs": {RxBytes: 500 + moved, TxBytes: 500 + moved}, ovsULLink: {RxBytes: 10, TxBytes: 1000}, "vxlan": {}},
			""},
		{"nothing counted",
			before, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := judgeCrossPath(before, tt.after, moved)
			require.Equal(t, tt.want, d.Path, d.Desc)
			require.Contains(t, d.Desc, "while 1000000 B were moved")
		})
	}
}

func TestCrossVerifierWant(t *testing.T) {
	const moved = 1000
	before := snapshot{"ovs": {}, ovsULLink: {}, "vxlan": {}}
	geneve := snapshot{"ovs": {RxBytes: 2 * moved}, ovsULLink: {TxBytes: 2 * moved}, "vxlan": {}}
	none := snapshot{"ovs": {}, ovsULLink: {}, "vxlan": {}}

	anyPath := &crossVerifier{}
	d, err := anyPath.check(before, geneve, moved)
	require.NoError(t, err)
	require.Equal(t, pathGeneve, d.Path)
	_, err = anyPath.check(before, none, moved)
	require.ErrorContains(t, err, "no known path")

	kernel := &crossVerifier{want: pathKernelVXLAN}
	d, err = kernel.check(before, geneve, moved)
	require.ErrorContains(t, err, "kernel-vxlan claimed but the traffic took geneve")
	require.Equal(t, pathGeneve, d.Path, "the path found is still reported")
}

func TestLinkVerifier(t *testing.T) {
	v := &linkVerifier{link: vxlanDev, path: pathVXLANBridge}
	before := snapshot{"link": {RxBytes: 100, TxBytes: 100}}
	d, err := v.check(before, snapshot{"link": {RxBytes: 5100, TxBytes: 1_000_100}}, 1_000_000)
	require.NoError(t, err)
	require.Equal(t, pathVXLANBridge, d.Path)
	d, err = v.check(before, snapshot{"link": {RxBytes: 200, TxBytes: 200}}, 1_000_000)
	require.ErrorContains(t, err, "carried less than was moved")
	require.Empty(t, d.Path)
}

func TestOVSVerifierPath(t *testing.T) {
	before := snapshot{"ovs": {RxBytes: 1000, TxBytes: 1000}}
	d, err := (&ovsVerifier{fast: true}).check(before, snapshot{"ovs": {RxBytes: 1100, TxBytes: 1100}}, 1_000_000)
	require.NoError(t, err)
	require.Equal(t, pathFast, d.Path)
	d, err = (&ovsVerifier{}).check(before, snapshot{"ovs": {RxBytes: 1_001_000, TxBytes: 1_001_000}}, 1_000_000)
	require.NoError(t, err)
	require.Equal(t, pathOVS, d.Path)
	d, err = (&ovsVerifier{fast: true}).check(before, snapshot{"ovs": {RxBytes: 1_001_000, TxBytes: 1_001_000}}, 1_000_000)
	require.Error(t, err)
	require.Empty(t, d.Path)
}

func TestCrossCaseWantPath(t *testing.T) {
	for _, tt := range []struct {
		fast, kernel bool
		want         string
	}{
		{false, false, pathGeneve},
		{false, true, pathGeneve},
		{true, false, ""},
		{true, true, pathKernelVXLAN},
	} {
		c := &sdncniCrossCase{fast: tt.fast, env: &sdncniEnv{kernelCross: tt.kernel}}
		require.Equal(t, tt.want, c.wantPath(), "fast %t kernel %t", tt.fast, tt.kernel)
	}
}

func TestCrossNodeArgs(t *testing.T) {
	e := newSdncniEnv(&harness{})
	require.Equal(t, []string{"--cross-node-vxlan", crossNodeVXLANDev, "--cross-node-underlay-ip", "100.66.0.1",
		"--cross-node-peers", "1:10.99.128.0/17=100.66.0.2"}, e.nodes[0].crossNodeArgs())
	require.Equal(t, []string{"--cross-node-vxlan", crossNodeVXLANDev, "--cross-node-underlay-ip", "100.66.0.2",
		"--cross-node-peers", "1:10.99.0.0/17=100.66.0.1"}, e.nodes[1].crossNodeArgs())
}
