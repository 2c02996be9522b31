package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The Secrets, in the install namespace.
const (
	// CASecret holds the CA's certificate and key (ca.crt, ca.key): only the pki Job
	// and the cluster role (which signs the nodes' certificates, Signer) read it.
	CASecret = "ovn-ca"
	// ServerSecret is the databases' certificate (tls.crt, tls.key, ca.crt).
	ServerSecret = "ovn-server"
	// ClusterSecret is the cluster role's client certificate (tls.crt, tls.key, ca.crt).
	// Nodes have one each, made on the node (NodeCert).
	ClusterSecret = "ovn-cluster"
	// CABundle is the ConfigMap (ca.crt) of the CA certificates the databases'
	// certificate chains to: what nodes trust. No secret in it.
	CABundle = "ovn-ca"
	// legacyClientSecret was the one client certificate all nodes shared; Ensure
	// deletes it.
	legacyClientSecret = "ovn-client"

	keyCACert = "ca.crt"
	keyCAKey  = "ca.key"
)

// Config says how long certificates live and when they are renewed.
type Config struct {
	CAValidity   time.Duration // default 10 years
	LeafValidity time.Duration // default 1 year
	RenewBefore  time.Duration // renew a certificate this long before it expires; default 30 days
	Now          func() time.Time
}

func (c *Config) defaults() {
	if c.CAValidity == 0 {
		c.CAValidity = 10 * 365 * 24 * time.Hour
	}
	if c.LeafValidity == 0 {
		c.LeafValidity = 365 * 24 * time.Hour
	}
	if c.RenewBefore == 0 {
		c.RenewBefore = 30 * 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Report says what Ensure wrote.
type Report struct {
	Created, Renewed, Deleted []string
}

// Ensure makes the three Secrets and the CABundle ConfigMap exist in namespace with certificates that are valid
// for at least RenewBefore and signed by the current CA. A renewed CA keeps the old one
// in the leaves' ca.crt while it is valid, so servers and clients that reload at
// different moments still trust each other. Idempotent: nothing is written when all is
// valid.
func Ensure(ctx context.Context, c client.Client, namespace string, cfg Config) (Report, error) {
	cfg.defaults()
	now := cfg.Now()
	var rep Report
	ca, oldCA, err := ensureCA(ctx, c, namespace, cfg, now, &rep)
	if err != nil {
		return rep, err
	}
	bundle := append(append([]byte{}, ca.Cert...), oldCA...)
	for _, leaf := range []struct {
		name, cn string
		u        Usage
	}{{ServerSecret, "ovn-central", Server}, {ClusterSecret, "sdncni-cluster", Client}} {
		if err := ensureLeaf(ctx, c, namespace, leaf.name, leaf.cn, leaf.u, ca, bundle, cfg, now, &rep); err != nil {
			return rep, err
		}
	}
	if err := ensureBundle(ctx, c, namespace, bundle, &rep); err != nil {
		return rep, err
	}
	old := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: legacyClientSecret}}
	if err := c.Delete(ctx, old); client.IgnoreNotFound(err) != nil {
		return rep, fmt.Errorf("delete the shared client certificate %s: %w", legacyClientSecret, err)
	} else if err == nil {
		rep.Deleted = append(rep.Deleted, legacyClientSecret)
	}
	return rep, nil
}

// ensureBundle writes bundle into the CABundle ConfigMap if it differs.
func ensureBundle(ctx context.Context, c client.Client, ns string, bundle []byte, rep *Report) error {
	var cm corev1.ConfigMap
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: CABundle}, &cm)
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("get configmap %s: %w", CABundle, err)
	}
	if err != nil {
		cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: CABundle, Labels: labels()},
			Data: map[string]string{keyCACert: string(bundle)}}
		if err := c.Create(ctx, &cm); err != nil {
			return fmt.Errorf("create configmap %s: %w", CABundle, err)
		}
		note(rep, "configmap/"+CABundle, false)
		return nil
	}
	if cm.Data[keyCACert] == string(bundle) {
		return nil
	}
	cm.Data = map[string]string{keyCACert: string(bundle)}
	if err := c.Update(ctx, &cm); err != nil {
		return fmt.Errorf("update configmap %s: %w", CABundle, err)
	}
	note(rep, "configmap/"+CABundle, true)
	return nil
}

func labels() map[string]string {
	return map[string]string{"app.kubernetes.io/part-of": "sdncni", "app.kubernetes.io/component": "ovn-pki"}
}

// ensureCA returns the current CA and, when it was just renewed, the previous CA's
// certificate (PEM) if still valid.
func ensureCA(ctx context.Context, c client.Client, ns string, cfg Config, now time.Time, rep *Report) (Pair, []byte, error) {
	var s corev1.Secret
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: CASecret}, &s)
	if client.IgnoreNotFound(err) != nil {
		return Pair{}, nil, fmt.Errorf("get secret %s: %w", CASecret, err)
	}
	found := err == nil
	cur := Pair{Cert: s.Data[keyCACert], Key: s.Data[keyCAKey]}
	if found {
		if cert, err := cur.Certificate(); err == nil && now.Add(cfg.RenewBefore).Before(cert.NotAfter) {
			if _, _, err := cur.parse(); err == nil {
				return cur, previous(s.Data["previous.crt"], now), nil
			}
		}
	}
	ca, err := NewCA("sdncni-ovn-ca", cfg.CAValidity, now)
	if err != nil {
		return Pair{}, nil, err
	}
	var old []byte
	if found {
		if cert, err := cur.Certificate(); err == nil && now.Before(cert.NotAfter) {
			old = cur.Cert
		}
	}
	data := map[string][]byte{keyCACert: ca.Cert, keyCAKey: ca.Key}
	if old != nil {
		data["previous.crt"] = old
	}
	if err := write(ctx, c, ns, CASecret, corev1.SecretTypeOpaque, data, found, &s); err != nil {
		return Pair{}, nil, err
	}
	note(rep, CASecret, found)
	return ca, old, nil
}

// previous returns pem if it is a certificate still valid at now.
func previous(pemBytes []byte, now time.Time) []byte {
	if len(pemBytes) == 0 {
		return nil
	}
	if cert, err := (Pair{Cert: pemBytes}).Certificate(); err == nil && now.Before(cert.NotAfter) {
		return pemBytes
	}
	return nil
}

func ensureLeaf(ctx context.Context, c client.Client, ns, name, cn string, u Usage, ca Pair, bundle []byte,
	cfg Config, now time.Time, rep *Report) error {
	var s corev1.Secret
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("get secret %s: %w", name, err)
	}
	found := err == nil
	if found && leafOK(s.Data, ca, bundle, cfg, now) {
		return nil
	}
	p, err := Issue(ca, cn, u, cfg.LeafValidity, now)
	if err != nil {
		return err
	}
	data := map[string][]byte{corev1.TLSCertKey: p.Cert, corev1.TLSPrivateKeyKey: p.Key, keyCACert: bundle}
	if err := write(ctx, c, ns, name, corev1.SecretTypeTLS, data, found, &s); err != nil {
		return err
	}
	note(rep, name, found)
	return nil
}

// leafOK: signed by ca, valid past RenewBefore, with the current CA bundle.
func leafOK(data map[string][]byte, ca Pair, bundle []byte, cfg Config, now time.Time) bool {
	leaf, err := (Pair{Cert: data[corev1.TLSCertKey]}).Certificate()
	if err != nil || len(data[corev1.TLSPrivateKeyKey]) == 0 || !bytes.Equal(data[keyCACert], bundle) {
		return false
	}
	caCert, err := ca.Certificate()
	if err != nil || leaf.CheckSignatureFrom(caCert) != nil {
		return false
	}
	return now.Add(cfg.RenewBefore).Before(leaf.NotAfter)
}

func write(ctx context.Context, c client.Client, ns, name string, typ corev1.SecretType, data map[string][]byte,
	found bool, s *corev1.Secret) error {
	if !found {
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels()},
			Type: typ, Data: data}
		if err := c.Create(ctx, s); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create secret %s: another run was first, try again: %w", name, err)
			}
			return fmt.Errorf("create secret %s: %w", name, err)
		}
		return nil
	}
	s.Data = data
	if err := c.Update(ctx, s); err != nil {
		return fmt.Errorf("update secret %s: %w", name, err)
	}
	return nil
}

func note(rep *Report, name string, renewed bool) {
	if renewed {
		rep.Renewed = append(rep.Renewed, name)
	} else {
		rep.Created = append(rep.Created, name)
	}
}

// Verify checks that leaf (PEM) chains to one of the CAs in bundle for usage.
func Verify(leafPEM, bundle []byte, usage x509.ExtKeyUsage, now time.Time) error {
	leaf, err := (Pair{Cert: leafPEM}).Certificate()
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		return fmt.Errorf("no CA in bundle")
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}
