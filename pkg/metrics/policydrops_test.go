package metrics

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/openflow"
	"github.com/sdncni/sdncni/pkg/ovs"
)

type fakeDropSources struct {
	acls    []ovs.DropACL
	cookies map[string][]uint64
	flows   []openflow.Flow
	err     error
}

func (f *fakeDropSources) PolicyDropACLs(context.Context) ([]ovs.DropACL, error) {
	return f.acls, f.err
}

func (f *fakeDropSources) ACLFlowCookies(_ context.Context, acls []string) (map[string][]uint64, error) {
	out := map[string][]uint64{}
	for _, a := range acls {
		if c, ok := f.cookies[a]; ok {
			out[a] = c
		}
	}
	return out, nil
}

func (f *fakeDropSources) FlowsByCookie(_ context.Context, cookies []uint64) ([]openflow.Flow, error) {
	want := map[uint64]bool{}
	for _, c := range cookies {
		want[c] = true
	}
	var out []openflow.Flow
	for _, fl := range f.flows {
		if want[fl.Cookie] {
			out = append(out, fl)
		}
	}
	return out, nil
}

func flow(cookie uint64, match string, age time.Duration, packets uint64) openflow.Flow {
	return openflow.Flow{Cookie: cookie, Table: 46, Priority: 11000, Match: match, Duration: age, Packets: packets}
}

func TestPolicyDropCollectorRunningTotals(t *testing.T) {
	src := &fakeDropSources{
		acls: []ovs.DropACL{
			{UUID: "aaaaaaaa-0000", Network: "red", Direction: "to-lport"},
			{UUID: "bbbbbbbb-0000", Network: "red", Direction: "from-lport"},
			{UUID: "cccccccc-0000", Network: "blue", Direction: "to-lport"},
		},
		cookies: map[string][]uint64{
			"aaaaaaaa-0000": {0x1, 0x2}, // the drop flow and the ct_commit-and-drop flow
			"bbbbbbbb-0000": {0x3},
			// blue's ACL has no flows yet
		},
	}
	c := NewPolicyDropCollector(src, src, src)
	read := func() map[dropKey]uint64 {
		t.Helper()
		got, err := c.read(context.Background())
		require.NoError(t, err)
		return got
	}
	red := func(dir string) dropKey { return dropKey{"red", dir} }

	src.flows = []openflow.Flow{
		flow(0x1, "a", 10*time.Second, 5), flow(0x1, "b", 10*time.Second, 1), flow(0x2, "a", 10*time.Second, 2),
		flow(0x3, "a", 10*time.Second, 4), flow(0x99, "x", time.Second, 1000), // not a drop ACL's
	}
	got := read()
	require.Equal(t, uint64(8), got[red(DirectionIngress)], "existing counts are drops already made")
	require.Equal(t, uint64(4), got[red(DirectionEgress)])
	v, ok := got[dropKey{"blue", DirectionIngress}]
	require.True(t, ok, "a VPN with a drop ACL is exported from the start")
	require.Zero(t, v)

	// Growth counts; a flow installed again (younger, fewer packets) counts from zero;
	// a vanished flow takes nothing away.
	src.flows = []openflow.Flow{
		flow(0x1, "a", 20*time.Second, 7), // +2
		flow(0x2, "a", time.Second, 1),    // reinstalled: +1
		flow(0x3, "a", 2*time.Second, 9),  // reinstalled with more packets than before: +9
	}
	got = read()
	require.Equal(t, uint64(11), got[red(DirectionIngress)])
	require.Equal(t, uint64(13), got[red(DirectionEgress)])

	// The flow of "b" comes back: it is new.
	src.flows = append(src.flows, flow(0x1, "b", time.Second, 3))
	got = read()
	require.Equal(t, uint64(14), got[red(DirectionIngress)])

	// Nothing moves: nothing counts.
	got = read()
	require.Equal(t, uint64(14), got[red(DirectionIngress)])
	require.Equal(t, uint64(13), got[red(DirectionEgress)])

	// A failing source keeps the totals and moves the error counter.
	src.err = errors.New("nb down")
	_, err := c.read(context.Background())
	require.Error(t, err)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	series := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			series[name] = m.GetCounter().GetValue()
		}
	}
	require.Equal(t, map[string]float64{
		"sdncni_policy_dropped_packets_total,direction=egress,vpn=red":   13,
		"sdncni_policy_dropped_packets_total,direction=ingress,vpn=blue": 0,
		"sdncni_policy_dropped_packets_total,direction=ingress,vpn=red":  14,
		"sdncni_policy_drop_read_errors_total":                           1, // the scrape's
	}, series)
}
