package metrics

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

type fakeHandoffs map[uint32]uint64

func (f fakeHandoffs) PolicyHandoffs(context.Context) (map[uint32]uint64, error) { return f, nil }

func TestPolicyHandoffCollectorNamesVPNs(t *testing.T) {
	c := NewPolicyHandoffCollector(fakeHandoffs{5: 7, 9: 2},
		func() map[uint32]string { return map[uint32]string{5: "red", 6: "blue"} })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "sdncni_policy_to_ovs_packets_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	require.Equal(t, map[string]float64{"red": 7, "id-9": 2}, got, "by VPN name; an unknown ID by number")
}
