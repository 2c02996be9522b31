package cnishim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/cniapi"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"n","type":"sdncni"}`))
	require.NoError(t, err)
	require.Equal(t, cniapi.DefaultSocket, c.Socket)
	require.Equal(t, DefaultTimeout, c.timeout)

	c, err = ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"n","type":"sdncni","socket":"/x.sock","timeout":"5s","unknownKey":1,"runtimeConfig":{"a":1}}`))
	require.NoError(t, err, "unknown and runtime keys must not break the plugin")
	require.Equal(t, "/x.sock", c.Socket)
	require.Equal(t, 5*time.Second, c.timeout)

	for name, in := range map[string]string{
		"not json":         `{`,
		"no name":          `{"cniVersion":"1.1.0","type":"sdncni"}`,
		"relative socket":  `{"name":"n","socket":"x.sock"}`,
		"bad timeout":      `{"name":"n","timeout":"soon"}`,
		"negative timeout": `{"name":"n","timeout":"-1s"}`,
		"relative logFile": `{"name":"n","logFile":"cni.log"}`,
		"wrong type":       `{"name":"n","socket":42}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig([]byte(in))
			var te *types.Error
			require.True(t, errors.As(err, &te))
			require.Equal(t, uint(types.ErrInvalidNetworkConfig), te.Code)
		})
	}
}

func TestMergeKeepsPrevResult(t *testing.T) {
	zero := 0
	prev := &types100.Result{
		CNIVersion: "1.1.0",
		Interfaces: []*types100.Interface{{Name: "lo"}},
		IPs:        []*types100.IPConfig{{Interface: &zero, Address: net.IPNet{IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(8, 32)}}},
		DNS:        types.DNS{Nameservers: []string{"10.0.0.10"}},
	}
	one := 1
	ours := &types100.Result{
		CNIVersion: "1.1.0",
		Interfaces: []*types100.Interface{{Name: "sdnh1"}, {Name: "eth0", Sandbox: "/run/netns/x"}},
		IPs:        []*types100.IPConfig{{Interface: &one, Address: net.IPNet{IP: net.IPv4(10, 0, 0, 2), Mask: net.CIDRMask(24, 32)}}},
	}
	m := Merge(prev, ours)
	require.Len(t, m.Interfaces, 3)
	require.Equal(t, "lo", m.Interfaces[0].Name)
	require.Len(t, m.IPs, 2)
	require.Equal(t, 0, *m.IPs[0].Interface)
	require.Equal(t, 2, *m.IPs[1].Interface, "our index is shifted past prev's interfaces")
	require.Equal(t, "eth0", m.Interfaces[*m.IPs[1].Interface].Name)
	require.Equal(t, []string{"10.0.0.10"}, m.DNS.Nameservers)
	require.Equal(t, 1, *ours.IPs[0].Interface, "ours is not modified")
}

func TestPrintVersion(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, PrintVersion(bytes.NewBufferString(`{"cniVersion":"1.0.0"}`), &out))
	var v struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &v))
	require.Equal(t, "1.0.0", v.CNIVersion)
	require.Equal(t, []string{"1.0.0", "1.1.0"}, v.SupportedVersions)

	out.Reset()
	require.NoError(t, PrintVersion(bytes.NewBuffer(nil), &out))
	require.NoError(t, json.Unmarshal(out.Bytes(), &v))
	require.Equal(t, "1.1.0", v.CNIVersion)

	var te *types.Error
	require.True(t, errors.As(PrintVersion(bytes.NewBufferString(`{`), &out), &te))
	require.Equal(t, uint(types.ErrDecodingFailure), te.Code)
}
