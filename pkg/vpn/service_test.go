package vpn

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

func TestServiceVIPs(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.10", ClusterIPs: []string{"10.0.0.10", "fd00::10"},
		Ports: []corev1.ServicePort{
			{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80},
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
			{Name: "sctp", Protocol: corev1.ProtocolSCTP, Port: 9},
		}}}
	slice := func(af discoveryv1.AddressType, ready *bool, addrs ...string) discoveryv1.EndpointSlice {
		return discoveryv1.EndpointSlice{AddressType: af,
			Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)},
				{Name: ptr.To("dns"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](5353)}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready}}}}
	}
	tests := []struct {
		name string
		eps  []discoveryv1.EndpointSlice
		want map[string]map[string]string
	}{
		{name: "no slices", want: map[string]map[string]string{
			"tcp": {"10.0.0.10:80": ""}, "udp": {"10.0.0.10:53": ""}}},
		{name: "ready and unset count, not ready and IPv6 do not",
			eps: []discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, nil, "10.1.0.5"),
				slice(discoveryv1.AddressTypeIPv4, ptr.To(true), "10.1.0.4"),
				slice(discoveryv1.AddressTypeIPv4, ptr.To(false), "10.1.0.6"),
				slice(discoveryv1.AddressTypeIPv6, nil, "fd00::5")},
			want: map[string]map[string]string{
				"tcp": {"10.0.0.10:80": "10.1.0.4:8080,10.1.0.5:8080"},
				"udp": {"10.0.0.10:53": "10.1.0.4:5353,10.1.0.5:5353"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, ServiceVIPs(svc, tt.eps))
		})
	}
}
