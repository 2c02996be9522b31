package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStartCluster(t *testing.T) {
	c := StartCluster(t, 2)
	require.Len(t, c.Nodes, 2)
	sb := c.Sbctl(t, "show")
	for i, o := range c.Nodes {
		require.Equal(t, c.NBDB, o.NBDB)
		require.Equal(t, c.SBDB, o.SBDB)
		// Each node is a chassis with its own Geneve encap on the underlay.
		require.Contains(t, sb, "Chassis "+o.SystemID)
		require.Equal(t, `"`+c.EncapIP(i)+`"`, c.Sbctl(t, "get", "Encap", c.Sbctl(t, "--bare", "--columns=_uuid", "find", "Encap", "chassis_name="+o.SystemID), "ip"))
		// br-int has a Geneve tunnel to the other node; br-phy holds the encap IP.
		peer := c.EncapIP(1 - i)
		require.Contains(t, o.Vsctl(t, "--bare", "--columns=options", "find", "Interface", "type=geneve"), "remote_ip="+peer)
		out, err := exec.Command("ip", "-n", o.NetNS, "-br", "addr", "show", "br-phy").CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), c.EncapIP(i)+"/24")
		// The underlay carries traffic between the nodes.
		out, err = exec.Command("nsenter", "--net="+o.NetNSPath, "ping", "-c1", "-W2", peer).CombinedOutput()
		require.NoError(t, err, "%s", out)
		// So does the kernel-owned link, which is no OVS port.
		out, err = exec.Command("ip", "-n", o.NetNS, "-br", "addr", "show", "ulk0").CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), c.KernelIP(i)+"/24")
		require.NotContains(t, o.Vsctl(t, "list-ports", "br-phy"), "ulk0")
		out, err = exec.Command("nsenter", "--net="+o.NetNSPath, "ping", "-c1", "-W2", c.KernelIP(1-i)).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	// Nothing of the cluster is in the root netns.
	out, err := exec.Command("ip", "-br", "link").CombinedOutput()
	require.NoError(t, err)
	require.NotContains(t, string(out), "br-phy")
	require.NotContains(t, string(out), "ul0")

	require.NoError(t, c.Stop())
	_, err = os.Stat(c.Dir)
	require.True(t, os.IsNotExist(err), "dir %s still there", c.Dir)
	out, err = exec.Command("ip", "netns", "list").CombinedOutput()
	require.NoError(t, err)
	for _, ns := range append([]string{c.Underlay}, c.Nodes[0].NetNS, c.Nodes[1].NetNS) {
		require.False(t, strings.Contains(string(out), ns), "netns %s still there", ns)
	}
	require.NoError(t, c.Stop())
}
