package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sdncni/sdncni/internal/testenv"
)

// Cleanup: an undo stack run in reverse, a state file for --down, and a check that
// nothing of ours is left.

type undo struct {
	what string // printed when not empty
	fn   func() error
}

// onCleanup registers fn to run at cleanup, after everything registered later.
func (d *demo) onCleanup(what string, fn func() error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.undo = append(d.undo, undo{what, fn})
}

func (d *demo) cleanup() {
	section("6. Cleanup", "pods leave through CNI DEL; deleting a VPN removes every OVN row it owned (its finalizer); then the controllers, OVS/OVN, the API server, the netns and pins go")
	d.mu.Lock()
	steps := d.undo
	d.undo = nil
	d.mu.Unlock()
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		err := s.fn()
		switch {
		case err != nil && s.what != "":
			say("✗ %s: %v", s.what, err)
			d.fail("cleanup: %s: %v", s.what, err)
		case err != nil:
			say("✗ %v", err)
			d.fail("cleanup: %v", err)
		case s.what != "":
			say("✓ %s", s.what)
		}
	}
}

// state is what --down needs to clean up after a run that cannot do it itself.
type state struct {
	PID         int      `json:"pid"`
	ClusterDir  string   `json:"clusterDir,omitempty"`
	NetNS       []string `json:"netns,omitempty"`
	Pins        []string `json:"pins,omitempty"`
	Controllers []int    `json:"controllers,omitempty"`
	APIPIDs     []int    `json:"apiPIDs,omitempty"`
	APIDirs     []string `json:"apiDirs,omitempty"`
	Daemons     []daemon `json:"daemons,omitempty"`
}

func statePath() string { return filepath.Join(workDir, "state.json") }

func (d *demo) saveState() {
	d.mu.Lock()
	defer d.mu.Unlock()
	raw, _ := json.MarshalIndent(d.state, "", "  ")
	if err := os.WriteFile(statePath(), raw, 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "demo: write state: %v\n", err)
	}
}

func readState() (state, error) {
	var s state
	raw, err := os.ReadFile(statePath())
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(raw, &s)
}

// leftoverCheck looks for every netns, process, pin and directory this run created.
func (d *demo) leftoverCheck() {
	left := leftovers(d.state)
	if _, err := os.Stat(workDir); err == nil {
		left = append(left, "dir "+workDir)
	}
	n := len(d.state.NetNS) + len(d.state.Daemons) + len(d.state.Controllers) + len(d.state.APIPIDs) + len(d.state.Pins)
	if len(left) == 0 {
		say("leftover check: none of this run's %d netns, processes and pin dirs remain, nor its directories ✓", n)
		return
	}
	for _, l := range left {
		say("✗ left behind: %s", l)
		d.fail("left behind: %s", l)
	}
}

func leftovers(s state) []string {
	var left []string
	for _, ns := range s.NetNS {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			left = append(left, "netns "+ns)
		}
	}
	procs := map[int]string{}
	for _, p := range s.Daemons {
		procs[p.PID] = p.Name
	}
	for _, p := range s.Controllers {
		procs[p] = "sdncni-controller"
	}
	for _, p := range s.APIPIDs {
		procs[p] = "" // etcd or kube-apiserver
	}
	for pid, name := range procs {
		if processIs(pid, name) || (name == "" && (processIs(pid, "etcd") || processIs(pid, "kube-apiserver"))) {
			left = append(left, fmt.Sprintf("process %s %d", commOf(pid), pid))
		}
	}
	for _, dir := range append(append([]string{s.ClusterDir}, s.Pins...), s.APIDirs...) {
		if _, err := os.Stat(dir); dir != "" && err == nil {
			left = append(left, "dir "+dir)
		}
	}
	return left
}

// downMode cleans up after --keep: it asks the running demo to clean up, or, when that
// process is gone (killed), removes what the state file lists itself.
func downMode() int {
	s, err := readState()
	if os.IsNotExist(err) {
		fmt.Println("demo --down: nothing to clean up (no " + statePath() + ")")
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo --down:", err)
		return 1
	}
	if processIs(s.PID, selfComm()) {
		fmt.Printf("demo --down: asking the running demo (pid %d) to clean up\n", s.PID)
		_ = syscall.Kill(s.PID, syscall.SIGTERM)
		for range 1800 { // 3 min
			if !processIs(s.PID, selfComm()) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if processIs(s.PID, selfComm()) {
			fmt.Fprintln(os.Stderr, "demo --down: the demo did not exit within 3 minutes")
			return 1
		}
		fmt.Println("demo --down: done (its output is in its own terminal)")
		return 0
	}
	fmt.Printf("demo --down: the demo (pid %d) is gone; removing what it left\n", s.PID)
	stop := func(pid int, comms ...string) {
		for _, c := range comms {
			if processIs(pid, c) {
				_ = syscall.Kill(pid, syscall.SIGTERM)
				for range 100 {
					if !processIs(pid, c) {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, pid := range s.Controllers {
		stop(pid, "sdncni-controller")
	}
	if s.ClusterDir != "" {
		if root, err := testenv.ModuleRoot(); err == nil {
			out, err := exec.Command("bash", filepath.Join(root, "hack", "dev-env.sh"), "down", "--dir", s.ClusterDir,
				"--netns", "sdncni-2n-none").CombinedOutput()
			if err != nil {
				fmt.Printf("  dev-env.sh down: %v: %s\n", err, out)
			}
		}
		_ = os.RemoveAll(s.ClusterDir)
	}
	for _, pid := range s.APIPIDs {
		stop(pid, "kube-apiserver", "etcd")
	}
	for _, ns := range s.NetNS {
		_ = deleteNetns(ns)
	}
	for _, dir := range append(s.Pins, s.APIDirs...) {
		_ = os.RemoveAll(dir)
	}
	_ = os.RemoveAll(workDir)
	if left := leftovers(s); len(left) > 0 {
		fmt.Printf("demo --down: still there: %s\n", strings.Join(left, ", "))
		return 1
	}
	fmt.Println("demo --down: nothing left ✓")
	return 0
}
