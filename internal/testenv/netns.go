package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// NetNS creates a network namespace for t, named sdncni-2n-ROLE-<hex> (a prefix the
// stale sweep knows), and deletes it when t ends. The caller must be root.
func NetNS(t testing.TB, role string) ns.NetNS {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "sdncni-2n-" + role + "-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	n, err := ns.GetNS("/run/netns/" + name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}
