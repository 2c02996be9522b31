package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	certv1 "k8s.io/api/certificates/v1"

	"github.com/sdncni/sdncni/pkg/pki"
)

const nodeUser = "system:serviceaccount:sdncni-system:sdncni-node"

// csrFor is the CSR the API server would hold for a request by the node's
// ServiceAccount with a token bound to a Pod on node.
func csrFor(node string, req []byte) *certv1.CertificateSigningRequest {
	return &certv1.CertificateSigningRequest{Spec: certv1.CertificateSigningRequestSpec{
		Request: req, SignerName: pki.SignerName, Usages: pki.NodeUsages, Username: nodeUser,
		Extra: map[string]certv1.ExtraValue{pki.NodeNameExtra: {node}}}}
}

func request(t *testing.T, key any, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestCheckNodeRequest, the signer's rules one by one (the API server test,
// TestNodeCertificates, covers the path with real identities).
func TestCheckNodeRequest(t *testing.T) {
	_, good, err := pki.NewNodeRequest("n1")
	require.NoError(t, err)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	require.NoError(t, err)
	rsa1k, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)

	for _, c := range []struct {
		name   string
		edit   func(*certv1.CertificateSigningRequest)
		denied string
	}{
		{"own node", func(*certv1.CertificateSigningRequest) {}, ""},
		{"another signer", func(c *certv1.CertificateSigningRequest) { c.Spec.SignerName = "kubernetes.io/kube-apiserver-client" }, "signer"},
		{"another user", func(c *certv1.CertificateSigningRequest) {
			c.Spec.Username = "system:serviceaccount:tenant:default"
		}, "only " + nodeUser},
		{"token bound to no pod", func(c *certv1.CertificateSigningRequest) { c.Spec.Extra = nil }, "not bound to a Pod"},
		{"another node's CN", func(c *certv1.CertificateSigningRequest) {
			c.Spec.Extra = map[string]certv1.ExtraValue{pki.NodeNameExtra: {"n2"}}
		}, `CN "n1" is not the requester's node "n2"`},
		{"server auth", func(c *certv1.CertificateSigningRequest) {
			c.Spec.Usages = append(c.Spec.Usages, certv1.UsageServerAuth)
		}, "client auth only"},
		{"no client auth", func(c *certv1.CertificateSigningRequest) {
			c.Spec.Usages = []certv1.KeyUsage{certv1.UsageDigitalSignature}
		}, "lack client auth"},
		{"cert sign", func(c *certv1.CertificateSigningRequest) {
			c.Spec.Usages = append(c.Spec.Usages, certv1.UsageCertSign)
		}, "client auth only"},
		{"SANs", func(c *certv1.CertificateSigningRequest) {
			c.Spec.Request = request(t, p256, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "n1"},
				IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}})
		}, "subject alternative names"},
		{"weak ecdsa", func(c *certv1.CertificateSigningRequest) {
			c.Spec.Request = request(t, p224, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "n1"}})
		}, "P-224"},
		{"short rsa", func(c *certv1.CertificateSigningRequest) {
			c.Spec.Request = request(t, rsa1k, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "n1"}})
		}, "1024 bits"},
		{"not PEM", func(c *certv1.CertificateSigningRequest) { c.Spec.Request = []byte("n1") }, "not a PEM"},
	} {
		t.Run(c.name, func(t *testing.T) {
			csr := csrFor("n1", good)
			c.edit(csr)
			_, err := pki.CheckNodeRequest(csr, nodeUser)
			if c.denied == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, c.denied)
		})
	}
}
