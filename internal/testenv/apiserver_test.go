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

	// The generated role is least privilege: what the controller does is allowed, the
	// rest is not.
	t.Run("rbac", func(t *testing.T) {
		rbac := filepath.Join("..", "..", "deploy", "rbac")
		_, err := api.Kubectl(ctx, nil, "apply", "-f", filepath.Join("..", "..", "deploy", "namespace.yaml"), "-f", rbac)
		require.NoError(t, err)
		sa := "system:serviceaccount:sdncni-system:sdncni-controller"
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"watch", "virtualprivatenetworks.sdncni.io"}, "yes"},
			{[]string{"create", "virtualprivatenetworks.sdncni.io"}, "yes"},
			{[]string{"update", "virtualprivatenetworks.sdncni.io", "--subresource=status"}, "yes"},
			{[]string{"update", "virtualprivatenetworks.sdncni.io", "--subresource=finalizers"}, "yes"},
			{[]string{"delete", "virtualprivatenetworks.sdncni.io"}, "no"},
			{[]string{"create", "vpnblocks.sdncni.io"}, "yes"},
			{[]string{"delete", "vpnblocks.sdncni.io"}, "yes"},
			{[]string{"deletecollection", "vpnblocks.sdncni.io"}, "yes"},
			{[]string{"update", "vpnblocks.sdncni.io"}, "no"},
			{[]string{"list", "pods"}, "yes"},
			{[]string{"delete", "pods"}, "no"},
			{[]string{"update", "namespaces"}, "no"},
			{[]string{"get", "secrets"}, "no"},
			{[]string{"create", "events"}, "yes"},
			{[]string{"update", "leases.coordination.k8s.io", "-n", "sdncni-system"}, "yes"},
			{[]string{"update", "leases.coordination.k8s.io", "-n", "default"}, "no"},
		} {
			t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
				out, _ := api.Kubectl(ctx, nil, append([]string{"auth", "can-i", "--as", sa}, tc.args...)...)
				// Warnings (cluster-scoped resource, …) come first; the answer is last.
				lines := strings.Split(strings.TrimSpace(out), "\n")
				require.Equal(t, tc.want, lines[len(lines)-1], out)
			})
		}
	})

}
