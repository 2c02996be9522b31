package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Central is OVN central alone, started with 'hack/dev-env.sh central-up': the NB and SB
// ovsdb-servers and ovn-northd in a private directory, no node (no ovs-vswitchd, no
// network namespace). It is enough to see what ovn-northd makes of NB rows and to ask
// ovn-trace what the logical pipeline does with a packet.
type Central struct {
	Dir        string
	NBDB, SBDB string // "unix:…"

	ovn *OVN // the script runner; it has no node
}

// StartCentral starts OVN central for t and stops it when t ends. It skips (fails under
// CI) without root or the programs.
func StartCentral(t testing.TB) *Central {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "ovsdb-server", "ovsdb-tool", "ovn-northd", "ovn-nbctl", "ovn-sbctl", "ovn-trace")
	script, err := devEnvScript()
	if err != nil {
		t.Fatal(err)
	}
	sweepStale(script)
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, harnessPIDFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		t.Fatal(err)
	}
	c := &Central{Dir: dir, ovn: &OVN{Dir: dir, NetNS: "sdncni-t-" + randomHex(3), script: script}}
	c.NBDB = "unix:" + filepath.Join(dir, "central", "ovnnb_db.sock")
	c.SBDB = "unix:" + filepath.Join(dir, "central", "ovnsb_db.sock")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("OVN central logs:\n%s", c.ovn.Logs())
		}
		if err := c.ovn.Stop(); err != nil {
			t.Errorf("stop OVN central: %v", err)
		}
	})
	if out, err := c.ovn.run("central-up"); err != nil {
		t.Fatalf("dev-env.sh central-up: %v\n%s", err, out)
	}
	return c
}

// Nbctl runs ovn-nbctl against the Northbound database and returns its trimmed output.
func (c *Central) Nbctl(t testing.TB, args ...string) string {
	t.Helper()
	return c.ovn.ctl(t, "ovn-nbctl", c.NBDB, args...)
}

// Trace runs ovn-trace against the Southbound database (after 'ovn-nbctl --wait=sb sync'
// made the logical flows current) and returns its output.
func (c *Central) Trace(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	full := append([]string{"--db=" + c.SBDB}, args...)
	out, err := exec.CommandContext(ctx, "ovn-trace", full...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ovn-trace %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// NorthdLog returns ovn-northd's log (where it reports a logical flow it could not
// parse, e.g. an ACL match in bad syntax).
func (c *Central) NorthdLog() string {
	data, _ := os.ReadFile(filepath.Join(c.Dir, "central", "ovn-northd.log"))
	return string(data)
}
