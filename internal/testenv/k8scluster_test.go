package testenv

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestK8sCluster brings a two-node cluster up, checks that both nodes registered with
// their node-network address as InternalIP, and that 'down' leaves nothing behind. It
// is heavy on a cold machine (it builds kubelet, containerd, … first; make test builds
// them before the tests), about a minute afterwards.
func TestK8sCluster(t *testing.T) {
	c := StartK8sCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	out, err := c.Kubectl(ctx, "get", "nodes", "-o", "json")
	require.NoError(t, err)
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct {
				Addresses []struct{ Type, Address string }
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	internal := map[string]string{}
	for _, n := range list.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" {
				internal[n.Metadata.Name] = a.Address
			}
		}
	}
	want := map[string]string{}
	for i, n := range c.Nodes {
		want[n] = c.NodeIP(i)
	}
	require.Equal(t, want, internal, "nodes and their InternalIPs")

	require.NoError(t, c.Stop())
	requireNothingLeft(t, c)
}

// requireNothingLeft checks that no netns, mount, cgroup or state of c survives 'down'.
func requireNothingLeft(t *testing.T, c *K8sCluster) {
	t.Helper()
	netns, err := exec.Command("ip", "netns", "list").Output()
	require.NoError(t, err)
	require.NotContains(t, string(netns), c.Prefix+"-", "network namespaces left")
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	require.NotContains(t, string(mounts), c.Dir, "mounts left")
	for _, n := range c.Nodes {
		m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", n))
		require.Empty(t, m, "cgroups left")
	}
	_, err = os.Stat(c.Dir)
	require.True(t, os.IsNotExist(err), "state dir %s left", c.Dir)
	ps, _ := exec.Command("pgrep", "-af", c.Dir).Output()
	require.Empty(t, strings.TrimSpace(string(ps)), "processes left")
}
