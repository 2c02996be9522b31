package pki_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/pki"
)

// TestEnsureSecrets, against a real API server: the first run creates the CA, server and
// cluster-role client Secrets and the CA bundle, and deletes the old shared client one; the server certificate serves, the client one only authenticates; a
// second run writes nothing; near the leaves' expiry they are renewed under the same
// CA; near the CA's expiry it is renewed too and the leaves trust old and new CA.
func TestEnsureSecrets(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx := context.Background()
	ns := "sdncni-system"
	require.NoError(t, client.IgnoreAlreadyExists(api.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})))
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) pki.Config {
		return pki.Config{Now: func() time.Time { return t0.Add(d) }}
	}
	get := func(name string) *corev1.Secret {
		var s corev1.Secret
		require.NoError(t, api.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s))
		return &s
	}

	// The client certificate all nodes once shared goes away: each node has its own.
	require.NoError(t, api.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ovn-client"}}))
	rep, err := pki.Ensure(ctx, api.Client, ns, at(0))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{pki.CASecret, pki.ServerSecret, pki.ClusterSecret, "configmap/" + pki.CABundle}, rep.Created)
	require.Equal(t, []string{"ovn-client"}, rep.Deleted)
	var cm corev1.ConfigMap
	require.NoError(t, api.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: pki.CABundle}, &cm))
	require.Equal(t, string(get(pki.ServerSecret).Data["ca.crt"]), cm.Data["ca.crt"], "nodes trust what the server's chain needs")
	require.NotContains(t, cm.Data["ca.crt"], "PRIVATE KEY")
	srv, cli := get(pki.ServerSecret), get(pki.ClusterSecret)
	require.Equal(t, corev1.SecretTypeTLS, srv.Type)
	require.NoError(t, pki.Verify(srv.Data["tls.crt"], srv.Data["ca.crt"], x509.ExtKeyUsageServerAuth, t0))
	require.NoError(t, pki.Verify(cli.Data["tls.crt"], cli.Data["ca.crt"], x509.ExtKeyUsageClientAuth, t0))
	require.Error(t, pki.Verify(cli.Data["tls.crt"], cli.Data["ca.crt"], x509.ExtKeyUsageServerAuth, t0),
		"a node's client certificate must not be able to serve as the database")
	require.NotContains(t, string(srv.Data["tls.crt"])+string(cli.Data["tls.crt"]), "PRIVATE KEY")
	_, leaked := cli.Data["ca.key"]
	require.False(t, leaked, "the CA key is only in its own Secret")

	rv := map[string]string{}
	for _, n := range []string{pki.CASecret, pki.ServerSecret, pki.ClusterSecret} {
		rv[n] = get(n).ResourceVersion
	}
	rep, err = pki.Ensure(ctx, api.Client, ns, at(24*time.Hour))
	require.NoError(t, err)
	require.Empty(t, rep.Created)
	require.Empty(t, rep.Renewed)
	for n, v := range rv {
		require.Equal(t, v, get(n).ResourceVersion, "%s rewritten with nothing to renew", n)
	}

	// 340 days on: within 30 days of the leaves' one-year expiry.
	caBefore := get(pki.CASecret).Data["ca.crt"]
	rep, err = pki.Ensure(ctx, api.Client, ns, at(340*24*time.Hour))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{pki.ServerSecret, pki.ClusterSecret}, rep.Renewed)
	require.Equal(t, caBefore, get(pki.CASecret).Data["ca.crt"], "the CA is kept")
	leaf, err := (pki.Pair{Cert: get(pki.ServerSecret).Data["tls.crt"]}).Certificate()
	require.NoError(t, err)
	require.True(t, leaf.NotAfter.After(t0.Add(700*24*time.Hour)), "renewed for a year: %v", leaf.NotAfter)

	// Near the CA's ten years: a new CA; the leaves trust both while the old is valid.
	late := 10*365*24*time.Hour - 10*24*time.Hour
	rep, err = pki.Ensure(ctx, api.Client, ns, at(late))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{pki.CASecret, pki.ServerSecret, pki.ClusterSecret, "configmap/" + pki.CABundle}, rep.Renewed)
	bundle := get(pki.ClusterSecret).Data["ca.crt"]
	require.Equal(t, 2, bytes.Count(bundle, []byte("BEGIN CERTIFICATE")), "old and new CA in the bundle")
	require.NoError(t, pki.Verify(get(pki.ServerSecret).Data["tls.crt"], bundle, x509.ExtKeyUsageServerAuth, t0.Add(late)))
}
