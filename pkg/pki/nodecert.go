package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	certv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	certclient "k8s.io/client-go/kubernetes/typed/certificates/v1"
)

// ErrDenied is returned (wrapped, with the signer's reason) when a node's request is
// denied or fails.
var ErrDenied = errors.New("certificate request denied")

// NodeCert keeps a node's own OVN client certificate in Dir (tls.key, tls.crt): the key
// is made on the node and never leaves it; the certificate comes from a
// CertificateSigningRequest of SignerName, which the cluster role signs (Signer).
type NodeCert struct {
	CSRs certclient.CertificateSigningRequestInterface
	Node string // the CN: the node's name, which is also its OVN chassis name
	Dir  string
	// CA is the file of the CA bundle the databases' certificates chain to; a
	// certificate that does not chain to it (the CA was renewed) is renewed. Optional.
	CA string
	// ExpirationSeconds asks the signer for a shorter life (0: the signer's own).
	ExpirationSeconds int32
	Poll              time.Duration // how often a pending request is looked at; default 1s
	Now               func() time.Time
}

// KeyFile and CertFile are where NodeCert writes, in Dir.
func (n *NodeCert) KeyFile() string  { return n.Dir + "/tls.key" }
func (n *NodeCert) CertFile() string { return n.Dir + "/tls.crt" }

func (n *NodeCert) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

// Ensure makes Dir hold a key and certificate for Node that is not yet due for renewal
// (two thirds of its life), asking for a new one if needed; it waits for the signer
// until ctx ends. It reports whether it wrote a new pair. A denied request returns
// ErrDenied with the reason.
func (n *NodeCert) Ensure(ctx context.Context) (bool, error) {
	if due, _ := n.Due(); !due {
		return false, nil
	}
	keyPEM, reqPEM, err := NewNodeRequest(n.Node)
	if err != nil {
		return false, err
	}
	csr := &certv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "sdncni-ovn-" + n.Node + "-",
			Labels: map[string]string{"app.kubernetes.io/part-of": "sdncni", "app.kubernetes.io/component": "ovn-pki"}},
		Spec: certv1.CertificateSigningRequestSpec{Request: reqPEM, SignerName: SignerName, Usages: NodeUsages},
	}
	if n.ExpirationSeconds > 0 {
		csr.Spec.ExpirationSeconds = &n.ExpirationSeconds
	}
	csr, err = n.CSRs.Create(ctx, csr, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("create certificate request: %w", err)
	}
	cert, err := n.wait(ctx, csr.Name)
	if err != nil {
		return false, err
	}
	if _, err := tls.X509KeyPair(cert, keyPEM); err != nil {
		return false, fmt.Errorf("certificate of %s does not match its key: %w", csr.Name, err)
	}
	if err := writeAtomic(n.Dir, map[string][]byte{"tls.key": keyPEM, "tls.crt": cert}); err != nil {
		return false, err
	}
	return true, nil
}

// wait polls the CSR until it holds a certificate, is denied or fails, or ctx ends.
func (n *NodeCert) wait(ctx context.Context, name string) ([]byte, error) {
	poll := n.Poll
	if poll == 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		csr, err := n.CSRs.Get(ctx, name, metav1.GetOptions{})
		if err != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("wait for %s: %w", name, err)
		}
		if err == nil {
			if len(csr.Status.Certificate) > 0 {
				return csr.Status.Certificate, nil
			}
			for _, c := range csr.Status.Conditions {
				if c.Type == certv1.CertificateDenied || c.Type == certv1.CertificateFailed {
					return nil, fmt.Errorf("%s %s: %s: %w", name, c.Type, c.Message, ErrDenied)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %s to be signed: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// Due reports whether Dir's pair must be (re)made, and when the present one is due.
func (n *NodeCert) Due() (bool, time.Time) {
	pair, err := tls.LoadX509KeyPair(n.CertFile(), n.KeyFile())
	if err != nil || len(pair.Certificate) == 0 {
		return true, time.Time{}
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || leaf.Subject.CommonName != n.Node {
		return true, time.Time{}
	}
	if n.CA != "" {
		bundle, err := os.ReadFile(n.CA)
		if err == nil && Verify(pemCert(leaf), bundle, x509.ExtKeyUsageClientAuth, n.now()) != nil {
			return true, time.Time{}
		}
	}
	at := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
	return !n.now().Before(at), at
}

// Run keeps the pair renewed until ctx ends, checking every interval (and a minute after
// a failure), reporting through log.
func (n *NodeCert) Run(ctx context.Context, interval time.Duration, log logr.Logger) {
	for {
		wait := interval
		attempt, cancel := context.WithTimeout(ctx, 5*time.Minute)
		renewed, err := n.Ensure(attempt)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error(err, "renew the node's OVN certificate")
			wait = min(interval, time.Minute)
		case renewed:
			_, due := n.Due()
			log.Info("renewed the node's OVN certificate", "renewAt", due)
		}
		if _, due := n.Due(); !due.IsZero() && time.Until(due) < wait {
			wait = max(time.Until(due), time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
