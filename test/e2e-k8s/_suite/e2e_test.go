// Package e2ek8s is a slim build of the upstream Kubernetes e2e suite that imports only the
// sig-network test packages: k8s.io/kubernetes/test/e2e/network (which pulls in network/netpol)
// and test/e2e/common/network ("Networking Granular Checks: Pods"). hack/e2e-k8s.sh copies
// this directory into a throw-away module that requires k8s.io/kubernetes and builds it
// with `go test -c`; the leading underscore keeps it out of sdncni's own module (`./...`).
//
// The flag handling follows upstream test/e2e/e2e_test.go at the same version; the suite
// hooks (suite_test.go) follow test/e2e/e2e.go (both Apache-2.0, The Kubernetes Authors).
// Left out on purpose: the other SIGs' packages, the cloud providers (only the built-in
// "local" and "skeleton" remain), logcheck, --list-conformance-tests (upstream publishes
// the list) and --prepull-images (upstream's whole pre-pull set, more than we build).
// Upstream's network package itself imports test/e2e/apps, and the framework's manifest
// helpers test/e2e/common, so their sig-apps/node/storage/scheduling specs are linked in
// anyway (≈ 750 of the ≈ 1000 specs); the focus of test/e2e-k8s/selection.sh leaves them
// out.
package e2ek8s

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"k8s.io/component-base/version"
	"k8s.io/kubernetes/test/e2e/framework"
	"k8s.io/kubernetes/test/e2e/framework/config"
	"k8s.io/kubernetes/test/e2e/framework/testfiles"
	e2etestingmanifests "k8s.io/kubernetes/test/e2e/testing-manifests"
	testfixtures "k8s.io/kubernetes/test/fixtures"

	// Define and freeze the feature constants before any spec is declared.
	_ "k8s.io/kubernetes/test/e2e/feature"

	// The specs: sig-network only.
	_ "k8s.io/kubernetes/test/e2e/common/network"
	_ "k8s.io/kubernetes/test/e2e/network"
	_ "k8s.io/kubernetes/test/e2e/network/netpol"

	// Reconfigure the framework as the full suite does (debug dumps on failure, metrics
	// grabbing, node checks) and format ktesting values readably.
	_ "k8s.io/kubernetes/test/e2e/framework/debug/init"
	_ "k8s.io/kubernetes/test/e2e/framework/metrics/init"
	_ "k8s.io/kubernetes/test/e2e/framework/node/init"
	_ "k8s.io/kubernetes/test/utils/ktesting/format"
)

func handleFlags() {
	config.CopyFlags(config.Flags, flag.CommandLine)
	framework.RegisterCommonFlags(flag.CommandLine)
	framework.RegisterClusterFlags(flag.CommandLine)
	flag.Parse()
}

func TestMain(m *testing.M) {
	var versionFlag bool
	flag.CommandLine.BoolVar(&versionFlag, "version", false, "Displays version information.")
	handleFlags()

	if versionFlag {
		fmt.Printf("%s\n", version.Get())
		os.Exit(0)
	}
	if flag.CommandLine.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unknown additional command line arguments: %s\n", flag.CommandLine.Args())
		os.Exit(1)
	}

	// Manifests and fixtures come from the embedded copies; no kubernetes checkout needed.
	testfiles.AddFileSource(e2etestingmanifests.GetE2ETestingManifestsFS())
	testfiles.AddFileSource(testfixtures.GetTestFixturesFS())

	// Handles --list-tests, --list-labels and --list-images, and exits for them.
	framework.AfterReadingAllFlags(&framework.TestContext)

	if framework.TestContext.RepoRoot != "" {
		testfiles.AddFileSource(testfiles.RootFileSource{Root: framework.TestContext.RepoRoot})
	}
	os.Exit(m.Run())
}

func TestE2E(t *testing.T) {
	RunE2ETests(t)
}
