package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// sdncniEnv is the OVS/OVN environment (hack/dev-env.sh) and the sdncni controller,
// shared by the sdncni cases. Only one controller runs at a time; switching between the
// fast-path and OVS-only cases restarts it with the other --fast-path value.
type sdncniEnv struct {
	h        *harness
	started  bool
	startErr error
	vars     map[string]string

	ctrl     *exec.Cmd
	ctrlFast bool
	ctrlDone chan struct{}
}

func (e *sdncniEnv) dir() string        { return filepath.Join(e.h.work, "ovn") }
func (e *sdncniEnv) socket() string     { return filepath.Join(e.h.work, "cni.sock") }
func (e *sdncniEnv) bpfPinDir() string  { return "/sys/fs/bpf/" + namePrefix }
func (e *sdncniEnv) script() string     { return filepath.Join(e.h.repo, "hack", "dev-env.sh") }
func (e *sdncniEnv) controller() string { return filepath.Join(e.h.repo, "bin", "sdncni-controller") }

func notAvailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotAvailable, fmt.Sprintf(format, args...))
}

// up starts the environment once; later calls return the first outcome.
func (e *sdncniEnv) up(ctx context.Context) error {
	if e.started {
		return e.startErr
	}
	e.started = true
	e.startErr = e.start(ctx)
	return e.startErr
}

func (e *sdncniEnv) start(ctx context.Context) error {
	for _, f := range []string{filepath.Join(e.h.repo, "bin", "sdncni"), e.controller()} {
		if _, err := os.Stat(f); err != nil {
			return notAvailable("%s not built (run make build)", f)
		}
	}
	if _, err := os.Stat(e.script()); err != nil {
		return notAvailable("%s missing", e.script())
	}
	if err := copyFile(filepath.Join(e.h.repo, "bin", "sdncni"), filepath.Join(e.h.cniBin, "sdncni")); err != nil {
		return err
	}
	upCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	e.h.cleanup.push("dev-env down", e.down)
	out, err := exec.CommandContext(upCtx, e.script(), "up", "--dir", e.dir(), "--netns", nodeNetNS).CombinedOutput()
	if err != nil {
		return notAvailable("hack/dev-env.sh up: %v: %s", err, lastLine(string(out)))
	}
	vars, err := readEnvFile(filepath.Join(e.dir(), "env"))
	if err != nil {
		return notAvailable("dev-env: %v", err)
	}
	for _, k := range []string{"SDNCNI_OVS_DB", "SDNCNI_NB_DB"} {
		if vars[k] == "" {
			return notAvailable("dev-env env file has no %s", k)
		}
	}
	e.vars = vars
	return nil
}

// netnsPath is where OVS and the controller run: the env file's namespace, or ours.
func (e *sdncniEnv) netnsPath() string {
	if p := e.vars["SDNCNI_NETNS_PATH"]; p != "" {
		return p
	}
	return netnsPath(nodeNetNS)
}

// vswitchdPID is the environment's ovs-vswitchd PID, 0 when unknown.
func (e *sdncniEnv) vswitchdPID() int {
	if f := e.vars["SDNCNI_VSWITCHD_PIDFILE"]; f != "" {
		return findPID(filepath.Dir(f), filepath.Base(f))
	}
	return findPID(e.dir(), "ovs-vswitchd.pid")
}

// mgmtSocket is the bridge's OpenFlow management socket in ovs-vswitchd's run
// directory (the node directory of the dev-env), "" when it is not there.
func (e *sdncniEnv) mgmtSocket() string {
	dir := e.vars["SDNCNI_NODE_DIR"]
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, e.bridge()+".mgmt")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

func (e *sdncniEnv) bridge() string {
	if b := e.vars["SDNCNI_BRIDGE"]; b != "" {
		return b
	}
	return "br-int"
}

// ensureController makes sure a controller with the given fast-path setting serves the
// CNI socket, restarting it when the other setting is running.
func (e *sdncniEnv) ensureController(ctx context.Context, fast bool) error {
	if err := e.up(ctx); err != nil {
		return err
	}
	if e.ctrl != nil && e.ctrlFast == fast {
		select {
		case <-e.ctrlDone:
			return fmt.Errorf("controller exited; see %s", e.logPath(fast))
		default:
			return nil
		}
	}
	if err := e.stopController(ctx); err != nil {
		return err
	}
	_ = os.Remove(e.socket())
	logf, err := os.Create(e.logPath(fast))
	if err != nil {
		return fmt.Errorf("create controller log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", "--net="+e.netnsPath(), "--", e.controller(),
		"--socket", e.socket(),
		"--ovs-db", e.vars["SDNCNI_OVS_DB"],
		"--nb-db", e.vars["SDNCNI_NB_DB"],
		"--bridge", e.bridge(),
		"--network", "default",
		"--cidr", "10.99.0.0/16",
		"--mtu", fmt.Sprint(e.h.opts.MTU),
		"--ipam-store", filepath.Join(e.h.work, "ipam.json"),
		"--bpf-pin-dir", e.bpfPinDir(),
		fmt.Sprintf("--fast-path=%t", fast),
		"--metrics-addr", "127.0.0.1:0",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return notAvailable("start controller: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	e.ctrl, e.ctrlFast, e.ctrlDone = cmd, fast, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(e.socket()); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		select {
		case <-done:
			e.ctrl = nil
			return notAvailable("controller exited (%s) before its socket appeared — not built yet? log: %s",
				cmd.ProcessState, lastLine(readTail(e.logPath(fast))))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return notAvailable("controller socket %s did not appear within 30s", e.socket())
		}
	}
}

func (e *sdncniEnv) logPath(fast bool) string {
	return filepath.Join(e.h.out, fmt.Sprintf("controller-fast-%t.log", fast))
}

// stopController ends the controller we started, by PID: SIGTERM, then SIGKILL.
func (e *sdncniEnv) stopController(ctx context.Context) error {
	if e.ctrl == nil {
		return nil
	}
	cmd, done := e.ctrl, e.ctrlDone
	e.ctrl = nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return nil
}

// down stops the controller and the environment; idempotent.
func (e *sdncniEnv) down(ctx context.Context) error {
	var errs []error
	errs = append(errs, e.stopController(ctx))
	_ = os.RemoveAll(e.bpfPinDir())
	if _, err := os.Stat(e.dir()); err == nil {
		out, err := exec.CommandContext(ctx, e.script(), "down", "--dir", e.dir()).CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Errorf("dev-env down: %w: %s", err, lastLine(string(out))))
		}
	}
	return errors.Join(errs...)
}

// readEnvFile reads KEY=VALUE lines (optionally prefixed by export, values optionally
// quoted).
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read env file: %w", err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		vars[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return vars, sc.Err()
}

func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	return out.Close()
}
