package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	certv1 "k8s.io/api/certificates/v1"
)

// The nodes' OVN client certificates are asked for with a Kubernetes
// CertificateSigningRequest of this signer; the cluster role approves and signs them
// (Signer), each node for its own name only (CheckNodeRequest).
const (
	// SignerName is the CSRs' spec.signerName.
	SignerName = "sdncni.io/ovn-node"
	// NodeNameExtra is the user-info extra in which the API server names the node of a
	// token bound to a Pod: what proves which node a request comes from.
	NodeNameExtra = "authentication.kubernetes.io/node-name"
)

// NodeUsages are the only usages a node's CSR may ask for: a TLS client.
var NodeUsages = []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageClientAuth}

// NewNodeRequest returns a fresh private key (PEM) and a PKCS#10 request (PEM) for cn.
// The key stays with the caller: only the request goes to the API server.
func NewNodeRequest(cn string) (keyPEM, reqPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("node key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate request %s: %w", cn, err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal node key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// CheckNodeRequest says whether csr may be signed as a node's OVN client certificate:
// it must come from the ServiceAccount nodeUser ("system:serviceaccount:NS:NAME") with a
// token bound to a Pod on the node it names as its CN, ask for client-auth usages only,
// name nothing but a CN, and hold an acceptable key with a valid self-signature. It
// returns the parsed request, or the reason to deny it.
func CheckNodeRequest(csr *certv1.CertificateSigningRequest, nodeUser string) (*x509.CertificateRequest, error) {
	s := csr.Spec
	if s.SignerName != SignerName {
		return nil, fmt.Errorf("signer %q is not %s", s.SignerName, SignerName)
	}
	if s.Username != nodeUser {
		return nil, fmt.Errorf("requested by %q: only %s may ask for node certificates", s.Username, nodeUser)
	}
	nodes := s.Extra[NodeNameExtra]
	if len(nodes) != 1 || nodes[0] == "" {
		return nil, errors.New("the requester's token is not bound to a Pod on a node (no node name in its user info)")
	}
	for _, u := range s.Usages {
		if !slices.Contains(NodeUsages, u) {
			return nil, fmt.Errorf("usage %q: a node certificate is for client auth only", u)
		}
	}
	if !slices.Contains(s.Usages, certv1.UsageClientAuth) {
		return nil, errors.New("usages lack client auth")
	}
	b, _ := pem.Decode(s.Request)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("request is not a PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("request signature: %w", err)
	}
	if req.Subject.CommonName != nodes[0] {
		return nil, fmt.Errorf("CN %q is not the requester's node %q", req.Subject.CommonName, nodes[0])
	}
	if len(req.DNSNames)+len(req.IPAddresses)+len(req.EmailAddresses)+len(req.URIs) != 0 {
		return nil, errors.New("subject alternative names: a node certificate names its node only")
	}
	if err := checkKey(req.PublicKey); err != nil {
		return nil, err
	}
	return req, nil
}

func checkKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ecdsa key on %s: want P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 8192 {
			return fmt.Errorf("rsa key of %d bits: want 2048 to 8192", n)
		}
	default:
		return fmt.Errorf("key type %T: want ECDSA or RSA", pub)
	}
	return nil
}

// SignNode issues req's node certificate (CN only, client auth only) with ca, valid for
// validity (shortened to csr's expirationSeconds and to the CA's own life).
func SignNode(ca Pair, req *x509.CertificateRequest, expirationSeconds *int32, validity time.Duration, now time.Time) ([]byte, error) {
	caCert, caKey, err := ca.parse()
	if err != nil {
		return nil, err
	}
	if expirationSeconds != nil {
		if d := time.Duration(*expirationSeconds) * time.Second; d > 0 && d < validity {
			validity = d
		}
	}
	notAfter := now.Add(validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.Subject.CommonName},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, req.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign node certificate %s: %w", req.Subject.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
