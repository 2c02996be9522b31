package ovs_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ovs"
)

func TestSetPolicyRules(t *testing.T) {
	o, n := newNorthbound(t)
	ctx := testCtx(t)
	ensureNetwork(t, n, "ovst-pol")
	ensureNetwork(t, n, "ovst-pol2")
	sets := []ovs.PolicyAddressSet{{Name: "sdncni_a1", Addrs: []string{"10.99.0.5", "10.99.0.6"}, Policy: "x/p"}}
	acls := []ovs.PolicyACL{
		{Key: "k1", Direction: "to-lport", Priority: 10001, Match: "ip4.dst == $sdncni_a1 && tcp.dst == 80", Action: "allow-related", Policy: "x/p"},
		{Key: "k2", Direction: "from-lport", Priority: 10000, Match: "ip4.src == $sdncni_a1", Action: "drop", AfterLB: true},
	}
	require.NoError(t, n.SetPolicyRules(ctx, "ovst-pol", sets, acls))
	// Another network's rows are its own.
	require.NoError(t, n.SetPolicyRules(ctx, "ovst-pol2", []ovs.PolicyAddressSet{{Name: "sdncni_b1", Addrs: []string{"10.99.0.5"}}},
		[]ovs.PolicyACL{{Key: "k9", Direction: "to-lport", Priority: 10000, Match: "ip4.dst == $sdncni_b1", Action: "drop"}}))

	aclsOf := func(net string) string {
		return o.Nbctl(t, "acl-list", ovs.SwitchName(net))
	}
	got := aclsOf("ovst-pol")
	require.Contains(t, got, "to-lport 10001 (ip4.dst == $sdncni_a1 && tcp.dst == 80) allow-related")
	require.Contains(t, got, "from-lport 10000 (ip4.src == $sdncni_a1) drop")
	require.Len(t, find(t, o.Nbctl, "_uuid", "ACL", "priority=10000", "direction=from-lport", "options:apply-after-lb=true"), 1)
	require.Equal(t, []string{"10.99.0.5", "10.99.0.6"}, find(t, o.Nbctl, "addresses", "Address_Set", "name=sdncni_a1"))

	before := o.Nbctl(t, "--bare", "--columns=_uuid", "find", "ACL", "external_ids:sdncni.io/acl=k1")
	// Same rules again: nothing changes.
	require.NoError(t, n.SetPolicyRules(ctx, "ovst-pol", sets, acls))
	require.Equal(t, before, o.Nbctl(t, "--bare", "--columns=_uuid", "find", "ACL", "external_ids:sdncni.io/acl=k1"))

	// A pod leaves the set, one ACL goes: only that changes.
	sets[0].Addrs = []string{"10.99.0.6"}
	require.NoError(t, n.SetPolicyRules(ctx, "ovst-pol", sets, acls[:1]))
	require.Equal(t, []string{"10.99.0.6"}, find(t, o.Nbctl, "addresses", "Address_Set", "name=sdncni_a1"))
	got = aclsOf("ovst-pol")
	require.NotContains(t, got, "drop")
	require.Equal(t, before, o.Nbctl(t, "--bare", "--columns=_uuid", "find", "ACL", "external_ids:sdncni.io/acl=k1"))
	require.Empty(t, find(t, o.Nbctl, "_uuid", "ACL", "external_ids:sdncni.io/acl=k2"), "the removed ACL is deleted, not left unreferenced")

	// No policies: every row of this network goes, the other network's stay.
	require.NoError(t, n.SetPolicyRules(ctx, "ovst-pol", nil, nil))
	require.Empty(t, strings.TrimSpace(aclsOf("ovst-pol")))
	require.Empty(t, find(t, o.Nbctl, "_uuid", "Address_Set", "name=sdncni_a1"))
	require.Contains(t, aclsOf("ovst-pol2"), "$sdncni_b1")

	// A network deleted before its policies: the address sets still go.
	require.NoError(t, n.DeleteNetwork(ctx, "ovst-pol2"))
	require.NoError(t, n.SetPolicyRules(ctx, "ovst-pol2", nil, nil))
	require.Empty(t, find(t, o.Nbctl, "_uuid", "Address_Set", "name=sdncni_b1"))
	require.Error(t, n.SetPolicyRules(ctx, "ovst-pol2", sets, acls), "rules for a network that does not exist")
}
