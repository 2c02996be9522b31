package testenv_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sdncni/sdncni/internal/testenv"
)

// deployManifests lists every manifest under deploy/ (the kustomization aside).
func deployManifests(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join("..", "..", "deploy"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") && d.Name() != "kustomization.yaml" {
			files = append(files, p)
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return files
}

func TestAPIServer(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("client", func(t *testing.T) {
		var ns corev1.Namespace
		require.NoError(t, api.Client.Get(ctx, client.ObjectKey{Name: "default"}, &ns))
		out, err := api.Kubectl(ctx, nil, "version", "-o", "yaml")
		require.NoError(t, err)
		require.Contains(t, out, "gitVersion: v1.37.2", "server and kubectl are version-stamped")
		require.NotContains(t, out, "v0.0.0")
	})

	// Server-side dry-run of every manifest catches schema errors (unknown fields, bad
	// values, admission) that client-side checks miss. The namespace must exist for real
	// for the namespaced objects.
	t.Run("deploy dry-run", func(t *testing.T) {
		_, err := api.Kubectl(ctx, nil, "apply", "-f", filepath.Join("..", "..", "deploy", "namespace.yaml"))
		require.NoError(t, err)
		for _, f := range deployManifests(t) {
			t.Run(filepath.ToSlash(f[len("../../deploy/"):]), func(t *testing.T) {
				out, err := api.Kubectl(ctx, nil, "apply", "--dry-run=server", "-f", f)
				require.NoError(t, err)
				require.Contains(t, out, "(server dry run)")
			})
		}
		out, err := api.Kubectl(ctx, nil, "kustomize", filepath.Join("..", "..", "deploy"))
		require.NoError(t, err)
		require.Contains(t, out, "kind: DaemonSet")
	})

	// The generated roles are least privilege: what each role does is allowed, the rest
	// is not; a node holds none of the cluster role's powers (docs/deploy.md, "RBAC").
	t.Run("rbac", func(t *testing.T) {
		rbac := filepath.Join("..", "..", "deploy", "rbac")
		_, err := api.Kubectl(ctx, nil, "apply", "-f", filepath.Join("..", "..", "deploy", "namespace.yaml"), "-R", "-f", rbac)
		require.NoError(t, err)
		const node, cluster = "system:serviceaccount:sdncni-system:sdncni-node", "system:serviceaccount:sdncni-system:sdncni-cluster"
		for _, tc := range []struct {
			as   string
			args []string
			want string
		}{
			{node, []string{"watch", "virtualprivatenetworks.sdncni.io"}, "yes"},
			{node, []string{"create", "virtualprivatenetworks.sdncni.io"}, "no"},
			{node, []string{"update", "virtualprivatenetworks.sdncni.io", "--subresource=status"}, "no"},
			{node, []string{"create", "vpnblocks.sdncni.io"}, "yes"},
			{node, []string{"delete", "vpnblocks.sdncni.io"}, "yes"}, // its own only: the policy
			{node, []string{"deletecollection", "vpnblocks.sdncni.io"}, "no"},
			{node, []string{"update", "vpnblocks.sdncni.io"}, "no"},
			{node, []string{"create", "vpnids.sdncni.io"}, "no"},
			{node, []string{"list", "pods"}, "yes"},
			{node, []string{"delete", "pods"}, "no"},
			{node, []string{"update", "namespaces"}, "no"},
			{node, []string{"get", "secrets"}, "no"},
			{node, []string{"create", "events"}, "yes"},
			{node, []string{"update", "leases.coordination.k8s.io", "-n", "sdncni-system"}, "no"},
			{node, []string{"watch", "clusternetworkpolicies.policy.networking.k8s.io"}, "yes"},
			{node, []string{"update", "clusternetworkpolicies.policy.networking.k8s.io", "--subresource=status"}, "no"},
			{cluster, []string{"watch", "virtualprivatenetworks.sdncni.io"}, "yes"},
			{cluster, []string{"create", "virtualprivatenetworks.sdncni.io"}, "yes"},
			{cluster, []string{"update", "virtualprivatenetworks.sdncni.io", "--subresource=status"}, "yes"},
			{cluster, []string{"delete", "virtualprivatenetworks.sdncni.io"}, "no"},
			{cluster, []string{"deletecollection", "vpnblocks.sdncni.io"}, "yes"},
			{cluster, []string{"create", "vpnblocks.sdncni.io"}, "no"},
			{cluster, []string{"create", "vpnids.sdncni.io"}, "yes"},
			{cluster, []string{"get", "secrets"}, "no"},
			{cluster, []string{"update", "leases.coordination.k8s.io", "-n", "sdncni-system"}, "yes"},
			{cluster, []string{"update", "leases.coordination.k8s.io", "-n", "default"}, "no"},
			{cluster, []string{"watch", "clusternetworkpolicies.policy.networking.k8s.io"}, "yes"},
			{cluster, []string{"update", "clusternetworkpolicies.policy.networking.k8s.io", "--subresource=status"}, "yes"},
			{cluster, []string{"update", "clusternetworkpolicies.policy.networking.k8s.io"}, "no"},
		} {
			t.Run(tc.as[strings.LastIndex(tc.as, ":")+1:]+" "+strings.Join(tc.args, " "), func(t *testing.T) {
				out, _ := api.Kubectl(ctx, nil, append([]string{"auth", "can-i", "--as", tc.as}, tc.args...)...)
				// Warnings (cluster-scoped resource, …) come first; the answer is last.
				lines := strings.Split(strings.TrimSpace(out), "\n")
				require.Equal(t, tc.want, lines[len(lines)-1], out)
			})
		}
	})

}
