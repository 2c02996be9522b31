package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI, where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// unitOnly reports whether the caller asked for the unit tier alone (make test-unit).
func unitOnly() bool { return os.Getenv("SDNCNI_TEST_TIER") == "unit" }

// skipOrFail skips the test outside CI and fails it inside CI.
func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if InCI() && !unitOnly() {
		t.Fatalf("prerequisite missing under CI: %s", why)
	}
	t.Skip(why)
}

// RequireRoot gates a privileged-tier test: it needs root for network namespaces, links
// and BPF.
func RequireRoot(t testing.TB) {
	t.Helper()
	if unitOnly() {
		t.Skip("privileged tier: skipped by SDNCNI_TEST_TIER=unit")
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "privileged tier: needs root")
	}
}

// RequireCommands gates a test on external programs (ovsdb-server, iperf3, …).
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			skipOrFail(t, "needs "+n+" on PATH (run 'make deps')")
		}
	}
}
