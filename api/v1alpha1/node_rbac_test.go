package v1alpha1_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
)

const (
	systemNS    = "sdncni-system"
	nodeNameKey = "authentication.kubernetes.io/node-name"
)

// applyDeploy applies, with kubectl and in kustomization order, each resource of
// deploy/kustomization.yaml whose path starts with one of prefixes.
func applyDeploy(ctx context.Context, t *testing.T, api *testenv.APIServer, prefixes ...string) {
	t.Helper()
	dir := filepath.Join("..", "..", "deploy")
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	require.NoError(t, err)
	var k struct {
		Resources []string `json:"resources"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &k))
	n := 0
	for _, r := range k.Resources {
		for _, p := range prefixes {
			if strings.HasPrefix(r, p) {
				out, err := api.Kubectl(ctx, nil, "apply", "-f", filepath.Join(dir, r))
				require.NoError(t, err, out)
				n++
				break
			}
		}
	}
	require.NotZero(t, n, "nothing in deploy/kustomization.yaml under %v", prefixes)
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

// tokenClients returns clients that authenticate with token, and who the API server
// says they are.
func tokenClients(ctx context.Context, t *testing.T, api *testenv.APIServer, token string) (client.Client, authenticationv1.UserInfo) {
	t.Helper()
	cfg := &rest.Config{Host: api.Config.Host, BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: api.Config.CAData}}
	c, err := client.New(cfg, client.Options{Scheme: api.Scheme})
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	rev, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	require.NoError(t, err)
	return c, rev.Status.UserInfo
}

// TestNodeCredentials: with deploy/'s RBAC and admission policies, a node's credentials
// (the sdncni-node ServiceAccount, a token bound to a Pod on node n1, as the DaemonSet's)
// claim and give back blocks for n1 only (one at a time: no deletecollection); they
// cannot write VPNs (spec, status, finalizers), create VPN ids or take the leader lease;
// a token bound to no Pod claims nothing. The cluster role's credentials can do what the cluster role does.
func TestNodeCredentials(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin := api.Client
	cs, err := kubernetes.NewForConfig(api.Config)
	require.NoError(t, err)

	applyDeploy(ctx, t, api, "namespace.yaml", "rbac/", "policy/")
	for _, n := range []string{"n1", "n2"} {
		require.NoError(t, admin.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}))
	}
	blue := &v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: "blue"},
		Spec: v1alpha1.VirtualPrivateNetworkSpec{CIDR: "10.1.0.0/24", NodeBlockSize: 26, Namespaces: []string{"blue"}}}
	require.NoError(t, admin.Create(ctx, blue))
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "sdncni-cluster-role", Namespace: systemNS},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("cluster-1")}}
	require.NoError(t, admin.Create(ctx, lease))

	n1, who := tokenClients(ctx, t, api, nodeToken(ctx, t, cs, "n1"))
	require.Equal(t, "system:serviceaccount:sdncni-system:sdncni-node", who.Username)
	require.Equal(t, authenticationv1.ExtraValue{"n1"}, who.Extra[nodeNameKey],
		"the API server names the token's node in the user info (the policy relies on it)")

	block := func(cidr, node string) *v1alpha1.VPNBlock {
		return v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix(cidr), node)
	}
	// A new policy is enforced within a moment: wait for it with a dry run.
	require.Eventually(t, func() bool {
		return apierrors.IsForbidden(n1.Create(ctx, block("10.1.0.64/26", "n2"), client.DryRunAll))
	}, 30*time.Second, 200*time.Millisecond, "n1's claim of a block for n2 is never refused")
	forbidden := func(err error, msgAndArgs ...any) {
		t.Helper()
		require.Error(t, err, msgAndArgs...)
		require.True(t, apierrors.IsForbidden(err), "want Forbidden, got %v", err)
	}

	require.NoError(t, n1.Create(ctx, block("10.1.0.0/26", "n1")), "a node claims a block for itself")
	err = n1.Create(ctx, block("10.1.0.64/26", "n2"))
	forbidden(err, "a block for another node")
	require.Contains(t, err.Error(), "may only claim blocks of its own")
	spoof := block("10.1.0.128/26", "n1")
	spoof.Labels[v1alpha1.LabelNode] = "n2"
	err = n1.Create(ctx, spoof)
	forbidden(err, "a block whose node label (what nodes select by) names another node")
	require.Contains(t, err.Error(), "may only claim blocks of its own")
	// Giving blocks back: its own, one at a time; never another node's.
	require.NoError(t, admin.Create(ctx, block("10.1.0.64/26", "n2")))
	err = n1.Delete(ctx, block("10.1.0.64/26", "n2"))
	forbidden(err, "n1 gives back n2's block")
	require.Contains(t, err.Error(), "may only claim blocks of its own")
	relabelled := block("10.1.0.128/26", "n2")
	relabelled.Labels[v1alpha1.LabelNode] = "n1"
	require.NoError(t, admin.Create(ctx, relabelled))
	forbidden(n1.Delete(ctx, relabelled), "n1 gives back n2's block that carries n1's label")
	forbidden(n1.DeleteAllOf(ctx, &v1alpha1.VPNBlock{}, client.MatchingLabels{v1alpha1.LabelNode: "n1"}),
		"deletecollection is the cluster role's")
	require.NoError(t, n1.Delete(ctx, block("10.1.0.0/26", "n1")), "a node gives back its own block")
	require.NoError(t, n1.Create(ctx, block("10.1.0.0/26", "n1")), "and claims it again")

	var v v1alpha1.VirtualPrivateNetwork
	require.NoError(t, n1.Get(ctx, client.ObjectKey{Name: "blue"}, &v), "a node reads VPNs")
	v.Status.VPNID = 9
	forbidden(n1.Status().Update(ctx, &v), "a node sets a VPN's status")
	require.NoError(t, n1.Get(ctx, client.ObjectKey{Name: "blue"}, &v))
	v.Spec.Namespaces = append(v.Spec.Namespaces, "victim")
	forbidden(n1.Update(ctx, &v), "a node edits a VPN's spec")
	require.NoError(t, n1.Get(ctx, client.ObjectKey{Name: "blue"}, &v))
	v.Finalizers = nil
	v.Labels = map[string]string{"x": "y"}
	forbidden(n1.Update(ctx, &v), "a node edits a VPN's metadata (finalizers)")
	forbidden(n1.Create(ctx, v1alpha1.NewVPNID(9, &v)), "a node claims a VPN id")
	var l coordinationv1.Lease
	forbidden(n1.Get(ctx, client.ObjectKeyFromObject(lease), &l), "a node reads the leader lease")
	l = *lease.DeepCopy()
	l.Spec.HolderIdentity = ptr.To("n1")
	forbidden(n1.Update(ctx, &l), "a node takes the leader lease")
	forbidden(n1.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: systemNS}}),
		"a node creates a lease")

	unbound, who := tokenClients(ctx, t, api, nodeToken(ctx, t, cs, ""))
	require.NotContains(t, who.Extra, nodeNameKey)
	err = unbound.Create(ctx, block("10.1.0.192/26", "n1"))
	forbidden(err, "a token bound to no Pod names no node: no claim")
	require.Contains(t, err.Error(), "bound to a Pod")

	// The cluster role's account does the cluster role's work.
	cfg := rest.CopyConfig(api.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:sdncni-system:sdncni-cluster",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:sdncni-system", "system:authenticated"}}
	cluster, err := client.New(cfg, client.Options{Scheme: api.Scheme})
	require.NoError(t, err)
	require.NoError(t, cluster.Get(ctx, client.ObjectKey{Name: "blue"}, &v))
	v.Status.VPNID = 9
	require.NoError(t, cluster.Status().Update(ctx, &v))
	require.NoError(t, cluster.Create(ctx, v1alpha1.NewVPNID(9, &v)))
	require.NoError(t, cluster.Get(ctx, client.ObjectKeyFromObject(lease), &l))
	l.Spec.HolderIdentity = ptr.To("cluster-2")
	require.NoError(t, cluster.Update(ctx, &l))
	require.NoError(t, cluster.DeleteAllOf(ctx, &v1alpha1.VPNBlock{}, client.MatchingLabels{v1alpha1.LabelVPN: "blue"}))
}
