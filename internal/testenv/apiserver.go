package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	sdncniv1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

const (
	// binariesTimeout bounds hack/k8s-binaries.sh: a cold build of kube-apiserver, etcd
	// and kubectl takes 10–17 minutes on two busy cores; cached, about a second.
	binariesTimeout = 30 * time.Minute
	// apiServerStartTimeout bounds the start of etcd and of kube-apiserver each (≈ 4 s
	// here when the machine is idle).
	apiServerStartTimeout = 90 * time.Second
	// ServiceCIDR is the API server's ClusterIP range (envtest's
	// --service-cluster-ip-range), for the controller's --service-cidr.
	ServiceCIDR = "10.0.0.0/24"
)

// APIServer is a real etcd and kube-apiserver (controller-runtime's envtest) with the
// sdncni CRDs from deploy/crds installed (with the ClusterNetworkPolicy CRD copied
// there from sigs.k8s.io/network-policy-api). Clients authenticate as an admin in
// system:masters; the API server authorizes with RBAC.
type APIServer struct {
	// Config reaches the API server as the admin.
	Config *rest.Config
	// Kubeconfig is a kubeconfig file for the same admin, for kubectl and for daemons
	// started by tests (--kubeconfig).
	Kubeconfig string
	// Client is a controller-runtime client with the Kubernetes, sdncni and
	// ClusterNetworkPolicy types.
	Client client.Client
	// Scheme holds the Kubernetes, sdncni and ClusterNetworkPolicy types.
	Scheme *runtime.Scheme
	// BinDir holds kube-apiserver, etcd and kubectl (KUBEBUILDER_ASSETS).
	BinDir string

	env *envtest.Environment
}

// StartAPIServer starts an API server for t and stops it when t ends. Outside CI it
// skips when the binaries cannot be had; under CI that fails the test. The first run on a
// machine builds the binaries (hack/k8s-binaries.sh, 10–17 minutes), so run such tests
// with a -timeout of at least 30m (make test does).
func StartAPIServer(t testing.TB) *APIServer {
	t.Helper()
	if unitOnly() {
		t.Skip("integration tier (API server): skipped by SDNCNI_TEST_TIER=unit")
	}
	dir, err := KubeBinaries(context.Background())
	if err != nil {
		skipOrFail(t, err.Error())
	}
	a, err := launchAPIServer(dir)
	if err != nil {
		t.Fatalf("start API server: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Stop(); err != nil {
			t.Errorf("stop API server: %v", err)
		}
	})
	return a
}

// LaunchAPIServer starts an API server that the caller stops with Stop; for a TestMain
// sharing one server across a package.
func LaunchAPIServer(ctx context.Context) (*APIServer, error) {
	dir, err := KubeBinaries(ctx)
	if err != nil {
		return nil, err
	}
	return launchAPIServer(dir)
}

func launchAPIServer(binDir string) (*APIServer, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("build scheme: %w", err)
	}
	if err := sdncniv1alpha1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("build scheme: %w", err)
	}
	if err := cnpv1.Install(scheme); err != nil {
		return nil, fmt.Errorf("build scheme: %w", err)
	}
	env := &envtest.Environment{
		Scheme:                   scheme,
		BinaryAssetsDirectory:    binDir,
		CRDDirectoryPaths:        []string{filepath.Join(root, "deploy", "crds")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: apiServerStartTimeout,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	// KUBEBUILDER_ASSETS would override BinaryAssetsDirectory; set the paths outright.
	env.ControlPlane.GetAPIServer().Path = filepath.Join(binDir, "kube-apiserver")
	env.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(binDir, "etcd")}
	env.ControlPlane.KubectlPath = filepath.Join(binDir, "kubectl")
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	a := &APIServer{Config: cfg, Scheme: scheme, BinDir: binDir, env: env}
	if err := a.finish(); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return a, nil
}

// finish writes the kubeconfig and builds the client.
func (a *APIServer) finish() error {
	user, err := a.env.AddUser(envtest.User{Name: "sdncni-test-admin", Groups: []string{"system:masters"}}, a.Config)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("build kubeconfig: %w", err)
	}
	a.Kubeconfig = filepath.Join(a.env.ControlPlane.APIServer.CertDir, "admin.kubeconfig")
	if err := os.WriteFile(a.Kubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	a.Client, err = client.New(a.Config, client.Options{Scheme: a.Scheme})
	if err != nil {
		return fmt.Errorf("build client: %w", err)
	}
	return nil
}

// Stop stops kube-apiserver and etcd and removes their data. It is safe to call twice.
func (a *APIServer) Stop() error {
	if a.env == nil {
		return nil
	}
	env := a.env
	a.env = nil
	return env.Stop()
}

// Kubectl runs the kubectl built with the API server against it and returns its
// combined output; stdin, when not nil, feeds it (for "-f -").
func (a *APIServer) Kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(a.BinDir, "kubectl"), append([]string{"--kubeconfig", a.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// KubeBinaries returns the directory holding kube-apiserver, etcd and kubectl, running
// hack/k8s-binaries.sh (which builds them on a machine's first run and answers from its
// cache after). KUBEBUILDER_ASSETS, when set to a directory holding all three, wins.
func KubeBinaries(ctx context.Context) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" && hasKubeBinaries(dir) {
		return dir, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, binariesTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "hack", "k8s-binaries.sh"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/k8s-binaries.sh: %w\n%s", err, tail(stderr.String(), 4000))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := lines[len(lines)-1]
	if !hasKubeBinaries(dir) {
		return "", fmt.Errorf("hack/k8s-binaries.sh: %q lacks the binaries", dir)
	}
	return dir, nil
}

func hasKubeBinaries(dir string) bool {
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// ModuleRoot is the first directory above the working directory that holds go.mod: the
// repository, from a test (which runs in its package's directory) or a program run from
// anywhere inside it.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
