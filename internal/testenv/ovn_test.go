package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStartOVN(t *testing.T) {
	o := StartOVN(t)
	require.True(t, strings.HasPrefix(o.OVSDB, "unix:"+o.Dir), o.OVSDB)
	require.Equal(t, "br-int", o.Bridge)
	require.Equal(t, o.NetNS, o.SystemID)

	// The harness's databases answer, the node is an OVN chassis, the bridge is netdev.
	require.Contains(t, o.Vsctl(t, "show"), "Bridge br-int")
	require.Equal(t, "netdev", o.Vsctl(t, "get", "Bridge", "br-int", "datapath_type"))
	require.Equal(t, `"true"`, o.Vsctl(t, "get", "Open_vSwitch", ".", "other_config:userspace-tso-enable"))
	o.Nbctl(t, "show")
	require.Contains(t, o.Sbctl(t, "show"), "Chassis "+o.SystemID)

	// ovs-vswitchd runs inside the node netns: br-int's tap lives there, not in the root.
	out, err := exec.Command("ip", "-n", o.NetNS, "link", "show", "br-int").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Error(t, exec.Command("ip", "link", "show", "br-int").Run())

	status, err := o.Status()
	require.NoError(t, err, status)

	o.RestartOVSDB(t)
	require.Contains(t, o.Vsctl(t, "show"), "Bridge br-int")
	require.NotEmpty(t, o.Logs())

	// Stop removes everything; a second Stop is harmless.
	require.NoError(t, o.Stop())
	_, err = os.Stat(o.Dir)
	require.True(t, os.IsNotExist(err), "dir %s still there", o.Dir)
	_, err = os.Stat(o.NetNSPath)
	require.True(t, os.IsNotExist(err), "netns %s still there", o.NetNSPath)
	require.NoError(t, o.Stop())
}
