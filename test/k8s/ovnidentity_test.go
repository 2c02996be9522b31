package k8s

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkNodeOVNIdentity: issue 12, item 1. Every node holds its own OVN client
// certificate (CN = its node name), issued through an approved CSR of sdncni.io/ovn-node,
// and no shared client Secret exists; with its certificate a node writes its own chassis
// in the Southbound but not another node's.
func checkNodeOVNIdentity(t *testing.T, k *kube, nodes []string) {
	t.Helper()
	out, _ := k.c.Kubectl(k.ctx, "-n", "sdncni-system", "get", "secret", "ovn-client", "--ignore-not-found", "-o", "name")
	require.Empty(t, strings.TrimSpace(out), "the shared client certificate is still there")

	issued := map[string]bool{}
	lines := k.kubectl("get", "csr", "-o",
		`jsonpath={range .items[?(@.spec.signerName=="sdncni.io/ovn-node")]}{.status.certificate}{"\n"}{end}`)
	for _, l := range strings.Fields(lines) {
		raw, err := base64.StdEncoding.DecodeString(l)
		require.NoError(t, err)
		b, _ := pem.Decode(raw)
		require.NotNil(t, b)
		c, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
		require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, c.ExtKeyUsage)
		issued[c.Subject.CommonName] = true
	}
	for _, n := range nodes {
		require.True(t, issued[n], "no node certificate issued for %s (issued: %v)", n, issued)
	}

	pod := func(node string) string {
		return strings.TrimSpace(k.kubectl("-n", "sdncni-system", "get", "pods", "-l", "app.kubernetes.io/name=sdncni-node",
			"--field-selector", "spec.nodeName="+node, "-o", "jsonpath={.items[0].metadata.name}"))
	}
	self, other := nodes[0], nodes[1]
	p := pod(self)
	remote := strings.Trim(strings.TrimSpace(k.kubectl("-n", "sdncni-system", "exec", p, "-c", "ovn-controller", "--",
		"ovs-vsctl", "get", "Open_vSwitch", ".", "external_ids:ovn-remote")), `"`)
	require.True(t, strings.HasPrefix(remote, "ssl:"), "ovn-remote %q", remote)
	sbctl := func(args ...string) (string, error) {
		return k.c.Kubectl(k.ctx, append([]string{"-n", "sdncni-system", "exec", p, "-c", "ovn-controller", "--",
			"ovn-sbctl", "--timeout=10", "--no-leader-only", "--db=" + remote, "--private-key=/etc/ovn-pki/tls.key",
			"--certificate=/etc/ovn-pki/tls.crt", "--ca-cert=/etc/ovn-ca/ca.crt"}, args...)...)
	}
	out, err := sbctl("set", "chassis", self, "external_ids:sdncni-test=own")
	require.NoError(t, err, "%s writes its own chassis: %s", self, out)
	_, _ = sbctl("remove", "chassis", self, "external_ids", "sdncni-test")
	out, err = sbctl("set", "chassis", other, "external_ids:sdncni-test=stolen")
	require.Error(t, err, "%s writes %s's chassis: %s", self, other, out)
	// ovn-sbctl says why on stderr, which Kubectl puts in the error.
	require.Contains(t, err.Error(), "RBAC", "refused for another reason")
	out, err = sbctl("chassis-add", "not-a-node", "geneve", "192.0.2.9")
	require.Error(t, err, "%s creates a chassis of another name: %s", self, out)
}
