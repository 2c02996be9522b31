package ovs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// TLS names the PEM files of an OVSDB client that connects over "ssl:": its key and
// certificate, and the CA that signed the server's certificate. As OVS's own clients do,
// the CA pins the server and host names are not checked (the servers are addressed by
// node IPs that a certificate made at install time cannot know); unlike them, the
// server's certificate must also be meant for servers (extended key usage serverAuth),
// so a client certificate of the same CA — every node holds one — cannot stand in for
// the database. The files are read at every handshake: rotated certificates (a
// Secret's files replaced) take effect at the next reconnection.
type TLS struct {
	Key, Cert, CA string
}

// Enabled reports whether any file is set.
func (t TLS) Enabled() bool { return t.Key != "" || t.Cert != "" || t.CA != "" }

// Config returns the client's tls.Config, or an error if a file is missing or unusable.
func (t TLS) Config() (*tls.Config, error) {
	if t.Key == "" || t.Cert == "" || t.CA == "" {
		return nil, errors.New("ovsdb tls: key, certificate and CA are all needed")
	}
	// Fail now, not at the first handshake, on files that cannot work.
	if _, err := t.pool(); err != nil {
		return nil, err
	}
	if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
		return nil, fmt.Errorf("ovsdb tls: load key pair %s, %s: %w", t.Cert, t.Key, err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
			if err != nil {
				return nil, fmt.Errorf("ovsdb tls: load key pair: %w", err)
			}
			return &c, nil
		},
		// Verified below against the CA, without a host name.
		InsecureSkipVerify: true, //nolint:gosec // VerifyPeerCertificate checks the chain
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return t.verify(raw)
		},
	}, nil
}

func (t TLS) pool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("ovsdb tls: read CA: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ovsdb tls: no certificate in CA file %s", t.CA)
	}
	return p, nil
}

// verify checks the server's chain (raw, leaf first) against the CA, for serverAuth.
func (t TLS) verify(raw [][]byte) error {
	if len(raw) == 0 {
		return errors.New("ovsdb tls: the server sent no certificate")
	}
	roots, err := t.pool()
	if err != nil {
		return err
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("ovsdb tls: parse server certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return fmt.Errorf("ovsdb tls: server certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

// checkEndpoint refuses an "ssl:" endpoint without TLS files and TLS files with an
// endpoint of another kind: either would silently not be what the operator asked for.
func checkEndpoint(endpoint string, t TLS) error {
	ssl := strings.HasPrefix(endpoint, "ssl:")
	switch {
	case ssl && !t.Enabled():
		return fmt.Errorf("%s: an ssl: endpoint needs a key, certificate and CA", endpoint)
	case !ssl && t.Enabled():
		return fmt.Errorf("%s: TLS files are given but the endpoint is not an ssl: one", endpoint)
	}
	return nil
}
