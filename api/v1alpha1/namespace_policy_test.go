package v1alpha1_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
)

// impersonate returns a client acting as user in groups (the test admin may impersonate).
func impersonate(t *testing.T, api *testenv.APIServer, user string, groups ...string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(api.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	c, err := client.New(cfg, client.Options{Scheme: api.Scheme})
	require.NoError(t, err)
	return c
}

// labelPatch is a JSON merge patch of a namespace's labels (nil removes one).
func labelPatch(labels map[string]any) client.Patch {
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		panic(err)
	}
	return client.RawPatch(types.MergePatchType, b)
}

// TestNamespaceVPNLabelsAdminOnly: with the admission policy shipped in deploy/, a tenant
// whose RBAC lets it create and edit namespaces cannot set, change or remove the
// sdncni.io/ labels that VPN selectors use (so cannot move a namespace into or out of a
// VPN); its other labels stay its own; VPN administrators (sdncni:vpn-admins,
// system:masters) can. And a VPN cannot select by a label outside sdncni.io/.
func TestNamespaceVPNLabelsAdminOnly(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin := api.Client

	editor := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "namespace-editor"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch"}}}}
	require.NoError(t, admin.Create(ctx, editor))
	require.NoError(t, admin.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "namespace-editors"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: editor.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "tenants"},
			{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "sdncni:vpn-admins"}}}))
	tenant := impersonate(t, api, "alice", "tenants")
	vpnAdmin := impersonate(t, api, "bob", "sdncni:vpn-admins")

	require.NoError(t, tenant.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "alice-app"}}),
		"the tenant may create namespaces at all")
	applyDeploy(ctx, t, api, "policy/")

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "alice-app"}}
	join := labelPatch(map[string]any{v1alpha1.LabelVPN: "blue"})
	// The API server starts enforcing a new policy within a moment: wait for it with a
	// dry run, which admission sees like the real request.
	require.Eventually(t, func() bool {
		err := tenant.Patch(ctx, ns, join, client.DryRunAll)
		return apierrors.IsForbidden(err)
	}, 30*time.Second, 200*time.Millisecond, "the tenant's label change is never refused")

	refused := func(err error) {
		t.Helper()
		require.Error(t, err)
		require.True(t, apierrors.IsForbidden(err), "want Forbidden, got %v", err)
		require.Contains(t, err.Error(), "only VPN administrators")
	}
	labels := func() map[string]string {
		var got corev1.Namespace
		require.NoError(t, admin.Get(ctx, client.ObjectKey{Name: "alice-app"}, &got))
		return got.Labels
	}

	refused(tenant.Patch(ctx, ns, join))
	require.NotContains(t, labels(), v1alpha1.LabelVPN)
	refused(tenant.Patch(ctx, ns, labelPatch(map[string]any{"sdncni.io/tenant": "x"})))
	refused(tenant.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "alice-new",
		Labels: map[string]string{v1alpha1.LabelVPN: "blue"}}}))
	require.NoError(t, tenant.Patch(ctx, ns, labelPatch(map[string]any{"team": "web"})), "other labels are the tenant's")

	require.NoError(t, admin.Patch(ctx, ns, join), "system:masters may move a namespace")
	require.Equal(t, "blue", labels()[v1alpha1.LabelVPN])

	refused(tenant.Patch(ctx, ns, labelPatch(map[string]any{v1alpha1.LabelVPN: "red"})))
	refused(tenant.Patch(ctx, ns, labelPatch(map[string]any{v1alpha1.LabelVPN: nil})))
	var full corev1.Namespace
	require.NoError(t, tenant.Get(ctx, client.ObjectKey{Name: "alice-app"}, &full))
	delete(full.Labels, v1alpha1.LabelVPN)
	refused(tenant.Update(ctx, &full))
	require.NoError(t, tenant.Patch(ctx, ns, labelPatch(map[string]any{"team": "api"})),
		"a tenant edits its other labels of a namespace in a VPN")
	require.Equal(t, "blue", labels()[v1alpha1.LabelVPN])

	require.NoError(t, vpnAdmin.Patch(ctx, ns, labelPatch(map[string]any{v1alpha1.LabelVPN: "red"})),
		"a VPN administrator may move a namespace")
	require.Equal(t, "red", labels()[v1alpha1.LabelVPN])

	// The VPN side: a selector may only use the admin-only labels.
	for _, sel := range []*metav1.LabelSelector{
		{MatchLabels: map[string]string{"team": "web"}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpExists}}},
	} {
		err := admin.Create(ctx, vpn("bad-selector", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.NamespaceSelector = sel }))
		require.True(t, apierrors.IsInvalid(err), "want Invalid, got %v", err)
		require.Contains(t, err.Error(), "label keys under sdncni.io/")
	}
	ok := vpn("ok-selector-sdncni", func(v *v1alpha1.VirtualPrivateNetwork) {
		v.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.LabelVPN: "red"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "sdncni.io/tier", Operator: metav1.LabelSelectorOpExists}}}
	})
	require.NoError(t, admin.Create(ctx, ok))
}
