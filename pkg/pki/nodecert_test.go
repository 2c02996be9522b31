package pki_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/pki"
)

const systemNS = "sdncni-system"

// TestNodeCertificates, against a real API server with deploy/'s RBAC: a node (the
// sdncni-node ServiceAccount, token bound to a Pod on n1, as the DaemonSet's) that asks
// for n2's certificate is denied with the reason and gets none; a token bound to no Pod
// is denied; the node cannot approve its own request. Asking for n1, it gets a
// certificate for CN n1, client auth only, signed by the CA, for the key it made and
// kept; the signer runs as the cluster role's ServiceAccount. Near two thirds of its
// life the node renews with a new key.
func TestNodeCertificates(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin, err := kubernetes.NewForConfig(api.Config)
	require.NoError(t, err)
	for _, f := range []string{"namespace.yaml", "rbac/service_account.yaml", "rbac/node/role.yaml",
		"rbac/cluster/role.yaml", "rbac/role_binding.yaml"} {
		out, err := api.Kubectl(ctx, nil, "apply", "-f", filepath.Join("..", "..", "deploy", f))
		require.NoError(t, err, out)
	}
	for _, n := range []string{"n1", "n2"} {
		_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err = pki.Ensure(ctx, api.Client, systemNS, pki.Config{})
	require.NoError(t, err)
	var bundle corev1.ConfigMap
	require.NoError(t, api.Client.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: pki.CABundle}, &bundle))
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(caFile, []byte(bundle.Data["ca.crt"]), 0o600))

	startSigner(ctx, t, api)

	n1 := tokenClientset(t, api, nodeToken(ctx, t, admin, "n1"))
	csrs := n1.CertificatesV1().CertificateSigningRequests()
	node := func(cn, dir string) *pki.NodeCert {
		return &pki.NodeCert{CSRs: csrs, Node: cn, Dir: dir, CA: caFile, Poll: 100 * time.Millisecond}
	}

	// Another node's name: denied, with the reason, and nothing written.
	wrongDir := filepath.Join(t.TempDir(), "pki")
	_, err = node("n2", wrongDir).Ensure(ctx)
	require.ErrorIs(t, err, pki.ErrDenied)
	require.Contains(t, err.Error(), `CN "n2" is not the requester's node "n1"`)
	_, statErr := os.Stat(filepath.Join(wrongDir, "tls.crt"))
	require.ErrorIs(t, statErr, os.ErrNotExist)
	denied := ourCSRs(ctx, t, admin)
	require.Len(t, denied, 1)
	require.Empty(t, denied[0].Status.Certificate, "a denied request carries no certificate")
	require.True(t, condition(denied[0], certv1.CertificateDenied))
	require.False(t, condition(denied[0], certv1.CertificateApproved))

	// A token bound to no Pod names no node.
	unbound := tokenClientset(t, api, nodeToken(ctx, t, admin, ""))
	_, err = (&pki.NodeCert{CSRs: unbound.CertificatesV1().CertificateSigningRequests(), Node: "n1",
		Dir: t.TempDir(), Poll: 100 * time.Millisecond}).Ensure(ctx)
	require.ErrorIs(t, err, pki.ErrDenied)
	require.Contains(t, err.Error(), "not bound to a Pod")

	// A node cannot approve (or sign) anything itself.
	_, keyReq, err := pki.NewNodeRequest("n2")
	require.NoError(t, err)
	own, err := csrs.Create(ctx, &certv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "self-"},
		Spec: certv1.CertificateSigningRequestSpec{Request: keyReq, SignerName: "example.com/other", Usages: pki.NodeUsages}},
		metav1.CreateOptions{})
	require.NoError(t, err)
	own.Status.Conditions = append(own.Status.Conditions, certv1.CertificateSigningRequestCondition{
		Type: certv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Self"})
	_, err = csrs.UpdateApproval(ctx, own.Name, own, metav1.UpdateOptions{})
	require.True(t, apierrors.IsForbidden(err), "a node approves a request: %v", err)

	// Its own name: issued.
	dir := filepath.Join(t.TempDir(), "pki")
	nc := node("n1", dir)
	issued, err := nc.Ensure(ctx)
	require.NoError(t, err)
	require.True(t, issued)
	pair, err := tls.LoadX509KeyPair(nc.CertFile(), nc.KeyFile())
	require.NoError(t, err, "the node's key and the issued certificate are a pair")
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	require.NoError(t, err)
	require.Equal(t, "n1", leaf.Subject.CommonName)
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage, "client auth only")
	require.Empty(t, leaf.DNSNames)
	require.Empty(t, leaf.IPAddresses)
	certPEM, err := os.ReadFile(nc.CertFile())
	require.NoError(t, err)
	require.NoError(t, pki.Verify(certPEM, []byte(bundle.Data["ca.crt"]), x509.ExtKeyUsageClientAuth, time.Now()))
	require.Error(t, pki.Verify(certPEM, []byte(bundle.Data["ca.crt"]), x509.ExtKeyUsageServerAuth, time.Now()),
		"a node's certificate cannot serve as the database")
	fi, err := os.Stat(nc.KeyFile())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	keyPEM, err := os.ReadFile(nc.KeyFile())
	require.NoError(t, err)
	for _, c := range ourCSRs(ctx, t, admin) {
		require.NotContains(t, string(c.Spec.Request), string(keyPEM), "the key never leaves the node")
	}

	// Nothing to do while the certificate is young; a new key near two thirds of its life.
	again, err := nc.Ensure(ctx)
	require.NoError(t, err)
	require.False(t, again)
	nc.Now = func() time.Time { return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 7 / 10) }
	renewed, err := nc.Ensure(ctx)
	require.NoError(t, err)
	require.True(t, renewed)
	newKey, err := os.ReadFile(nc.KeyFile())
	require.NoError(t, err)
	require.NotEqual(t, keyPEM, newKey, "renewal makes a new key")
	_, err = tls.LoadX509KeyPair(nc.CertFile(), nc.KeyFile())
	require.NoError(t, err)
}

// startSigner runs the Signer as the cluster role's ServiceAccount until ctx ends.
func startSigner(ctx context.Context, t *testing.T, api *testenv.APIServer) {
	t.Helper()
	cfg := rest.CopyConfig(api.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:sdncni-system:sdncni-cluster",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:sdncni-system", "system:authenticated"}}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: api.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Logger: logr.Discard()})
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	s := &pki.Signer{Cache: mgr.GetCache(), CSRs: cs.CertificatesV1().CertificateSigningRequests(),
		Secrets: cs.CoreV1().Secrets(systemNS), NodeUser: "system:serviceaccount:sdncni-system:sdncni-node",
		Log: logr.Discard()}
	require.NoError(t, s.SetupWithManager(mgr))
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("signer: %v", err)
		}
	})
}

// nodeToken returns a token of the sdncni-node ServiceAccount: bound to a Pod on node
// (as the DaemonSet's projected token is), or with node "" bound to nothing.
func nodeToken(ctx context.Context, t *testing.T, cs kubernetes.Interface, node string) string {
	t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
	if node != "" {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "sdncni-node-" + node, Namespace: systemNS},
			Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "sdncni-node",
				Containers: []corev1.Container{{Name: "c", Image: "sdncni"}}}}
		pod, err := cs.CoreV1().Pods(systemNS).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := cs.CoreV1().ServiceAccounts(systemNS).CreateToken(ctx, "sdncni-node", req, metav1.CreateOptions{})
	require.NoError(t, err)
	return tr.Status.Token
}

func tokenClientset(t *testing.T, api *testenv.APIServer, token string) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: api.Config.Host, BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: api.Config.CAData}})
	require.NoError(t, err)
	return cs
}

func ourCSRs(ctx context.Context, t *testing.T, cs kubernetes.Interface) []certv1.CertificateSigningRequest {
	t.Helper()
	l, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var out []certv1.CertificateSigningRequest
	for _, c := range l.Items {
		if c.Spec.SignerName == pki.SignerName {
			out = append(out, c)
		}
	}
	return out
}

func condition(c certv1.CertificateSigningRequest, typ certv1.RequestConditionType) bool {
	for _, x := range c.Status.Conditions {
		if x.Type == typ && x.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
