package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// scriptTimeout bounds one run of hack/dev-env.sh.
	scriptTimeout = 2 * time.Minute
	// dirPrefix names environment directories under os.TempDir().
	dirPrefix = "sdncni-ovst"
	// harnessPIDFile in an environment's Dir holds the PID of the test process owning it.
	harnessPIDFile = "harness.pid"
)

// OVN is a throw-away OVS/OVN environment started with hack/dev-env.sh: OVN central
// (NB, SB, northd) and one node (conf.db ovsdb-server, ovs-vswitchd with the userspace
// datapath and ovn-controller) whose datapath runs in its own network namespace.
type OVN struct {
	// Dir holds every db, socket, pidfile and log of the environment.
	Dir string
	// NetNS is the node's network namespace name, NetNSPath its /run/netns path.
	NetNS     string
	NetNSPath string
	// OVSDB, NBDB and SBDB are OVSDB endpoints ("unix:/…").
	OVSDB string
	NBDB  string
	SBDB  string
	// Bridge is the integration bridge (br-int, datapath_type=netdev).
	Bridge   string
	SystemID string
	// Env is the parsed env file the script wrote.
	Env map[string]string

	script string
}

// Option changes how StartOVN sets the environment up.
type Option func(*config)

type config struct {
	systemID string
	encapIP  string
}

// WithSystemID sets the node's OVN chassis name (default: the netns name).
func WithSystemID(id string) Option { return func(c *config) { c.systemID = id } }

// WithEncapIP sets the node's Geneve endpoint address (default 127.0.0.1).
func WithEncapIP(ip string) Option { return func(c *config) { c.encapIP = ip } }

// StartOVN starts a private OVS/OVN environment for t and stops it (every daemon by PID,
// the netns, the directory) when t ends. It skips (fails under CI) without root or the
// OVS/OVN programs.
func StartOVN(t testing.TB, opts ...Option) *OVN {
	t.Helper()
	RequireOVN(t)
	o, err := Launch(opts...)
	if err != nil {
		t.Fatalf("start OVS/OVN: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("OVS/OVN logs:\n%s", o.Logs())
		}
		if err := o.Stop(); err != nil {
			t.Errorf("stop OVS/OVN: %v", err)
		}
	})
	return o
}

// RequireOVN gates a test on root and the OVS/OVN programs the environment needs.
func RequireOVN(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "ovsdb-server", "ovsdb-tool", "ovs-vswitchd", "ovs-vsctl",
		"ovn-northd", "ovn-controller", "ovn-nbctl", "ovn-sbctl", "nsenter", "ip")
}

// Launch starts an environment without a testing.TB; the caller must call Stop. Use it to
// share one environment across a package's tests (see Shared). On failure it has already
// stopped whatever it started, and the error carries the daemons' logs.
func Launch(opts ...Option) (*OVN, error) {
	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}
	script, err := devEnvScript()
	if err != nil {
		return nil, err
	}
	sweepStale(script)
	// A short path: unix socket paths must stay under 108 bytes.
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("make dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, harnessPIDFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("write %s: %w", harnessPIDFile, err)
	}
	o := &OVN{Dir: dir, NetNS: "sdncni-t-" + randomHex(3), script: script}
	args := []string{"up"}
	if cfg.systemID != "" {
		args = append(args, "--system-id", cfg.systemID)
	}
	if cfg.encapIP != "" {
		args = append(args, "--encap-ip", cfg.encapIP)
	}
	if out, err := o.run(args...); err != nil {
		logs := o.Logs()
		if stopErr := o.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, fmt.Errorf("dev-env.sh up: %w\n%s\n%s", err, out, logs)
	}
	if err := o.loadEnv(); err != nil {
		_ = o.Stop()
		return nil, err
	}
	return o, nil
}

// Stop runs 'dev-env.sh down': it stops the daemons by PID, deletes the bridges and the
// netns, and removes Dir. Calling it twice is harmless.
func (o *OVN) Stop() error {
	out, err := o.run("down")
	if err != nil {
		return fmt.Errorf("dev-env.sh down: %w\n%s", err, out)
	}
	if err := os.RemoveAll(o.Dir); err != nil {
		return fmt.Errorf("remove %s: %w", o.Dir, err)
	}
	return nil
}

// RestartOVSDB stops the node's Open_vSwitch ovsdb-server and starts it again on the same
// database and socket; connected clients see a disconnection and must reconnect.
func (o *OVN) RestartOVSDB(t testing.TB) {
	t.Helper()
	if out, err := o.run("restart-ovsdb"); err != nil {
		t.Fatalf("restart ovsdb-server: %v\n%s", err, out)
	}
}

// Status reports 'dev-env.sh status': nil when every daemon is alive.
func (o *OVN) Status() (string, error) { return o.run("status") }

// Vsctl runs ovs-vsctl against the node's database and returns its trimmed output.
func (o *OVN) Vsctl(t testing.TB, args ...string) string {
	t.Helper()
	return o.ctl(t, "ovs-vsctl", o.OVSDB, args...)
}

// Nbctl runs ovn-nbctl against the Northbound database and returns its trimmed output.
func (o *OVN) Nbctl(t testing.TB, args ...string) string {
	t.Helper()
	return o.ctl(t, "ovn-nbctl", o.NBDB, args...)
}

// Sbctl runs ovn-sbctl against the Southbound database and returns its trimmed output.
func (o *OVN) Sbctl(t testing.TB, args ...string) string {
	t.Helper()
	return o.ctl(t, "ovn-sbctl", o.SBDB, args...)
}

func (o *OVN) ctl(t testing.TB, prog, db string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{"--db=" + db, "--timeout=20"}, args...)
	out, err := exec.CommandContext(ctx, prog, full...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Logs returns every daemon log under Dir, each with a header.
func (o *OVN) Logs() string {
	var files []string
	_ = filepath.WalkDir(o.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".log") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "==> %s <==\n%s\n", f, data)
	}
	return b.String()
}

// run invokes the script for this environment. Output goes through a file, not a pipe:
// the daemons it starts must not hold our pipe open.
func (o *OVN) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	f, err := os.CreateTemp("", "sdncni-ovst-out")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	full := append([]string{o.script}, args...)
	full = append(full, "--dir", o.Dir, "--netns", o.NetNS)
	cmd := exec.CommandContext(ctx, "bash", full...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return string(out), runErr
}

func (o *OVN) loadEnv() error { return o.loadEnvFile(filepath.Join(o.Dir, "env")) }

// loadEnvFile reads a node's env file written by the script into o.
func (o *OVN) loadEnvFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read env file: %w", err)
	}
	defer f.Close()
	o.Env = map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "export ") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			o.Env[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read env file: %w", err)
	}
	o.NetNSPath = o.Env["SDNCNI_NETNS_PATH"]
	o.OVSDB = o.Env["SDNCNI_OVS_DB"]
	o.NBDB = o.Env["SDNCNI_NB_DB"]
	o.SBDB = o.Env["SDNCNI_SB_DB"]
	o.Bridge = o.Env["SDNCNI_BRIDGE"]
	o.SystemID = o.Env["SDNCNI_SYSTEM_ID"]
	for k, v := range map[string]string{"SDNCNI_OVS_DB": o.OVSDB, "SDNCNI_NB_DB": o.NBDB,
		"SDNCNI_SB_DB": o.SBDB, "SDNCNI_BRIDGE": o.Bridge, "SDNCNI_NETNS_PATH": o.NetNSPath} {
		if v == "" {
			return fmt.Errorf("env file lacks %s", k)
		}
	}
	return nil
}

// Shared starts one environment for a whole test package on first use. Declare it at
// package level and stop it from TestMain after m.Run:
//
//	var env testenv.Shared
//	func TestMain(m *testing.M) { code := m.Run(); env.Stop(); os.Exit(code) }
//	func TestX(t *testing.T) { o := env.Get(t) … }
//
// Tests sharing it must leave the environment as they found it (t.Cleanup).
type Shared struct {
	Options []Option

	once sync.Once
	ovn  *OVN
	err  error
}

// Get returns the shared environment, starting it on the first call. It skips (fails
// under CI) without root or the programs, and fails t if the start failed.
func (s *Shared) Get(t testing.TB) *OVN {
	t.Helper()
	RequireOVN(t)
	s.once.Do(func() { s.ovn, s.err = Launch(s.Options...) })
	if s.err != nil {
		t.Fatalf("start shared OVS/OVN: %v", s.err)
	}
	return s.ovn
}

// Stop stops the environment if it was started; print its error, there is no test left
// to fail.
func (s *Shared) Stop() error {
	if s.ovn == nil {
		return nil
	}
	return s.ovn.Stop()
}

// sweepStale stops environments left behind by test processes that died without
// cleaning up (killed by a test timeout, SIGKILL, …): a Dir whose harness.pid names a
// process that no longer exists. Environments of live processes are left alone.
func sweepStale(script string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, harnessPIDFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 || processExists(pid) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
		_ = exec.CommandContext(ctx, "bash", script, "down", "--dir", dir).Run()
		cancel()
		_ = os.RemoveAll(dir)
	}
}

func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// devEnvScript finds hack/dev-env.sh in the module root: the first directory above the
// working directory that holds go.mod.
func devEnvScript() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("find dev-env.sh: %w", err)
	}
	s := filepath.Join(root, "hack", "dev-env.sh")
	if _, err := os.Stat(s); err != nil {
		return "", fmt.Errorf("find dev-env.sh: %w", err)
	}
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
