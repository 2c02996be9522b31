package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Meta records the machine, software and flags of a run.
type Meta struct {
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	Kernel         string    `json:"kernel"`
	CPUModel       string    `json:"cpu_model"`
	Cores          int       `json:"cores"`
	OVS            string    `json:"ovs_version"`
	OVN            string    `json:"ovn_version"`
	Iperf3         string    `json:"iperf3_version"`
	Go             string    `json:"go_version"`
	PluginsVersion string    `json:"cni_plugins_version"`
	GitCommit      string    `json:"git_commit"`
	GitDirty       bool      `json:"git_dirty"`
	Args           []string  `json:"args"`
	Flags          options   `json:"flags"`
}

func collectMeta(ctx context.Context, repo string, o *options) Meta {
	m := Meta{
		Start:    time.Now().UTC(),
		Kernel:   strings.TrimSpace(cmdOut(ctx, "", "uname", "-r")),
		CPUModel: cpuModel(),
		Cores:    runtime.NumCPU(),
		OVS:      toolVersion(ctx, "ovs-vswitchd"),
		OVN:      toolVersion(ctx, "ovn-controller"),
		Iperf3:   iperfVersion(ctx),
		Go:       runtime.Version(),
		Args:     os.Args[1:],
		Flags:    *o,
	}
	m.GitCommit = strings.TrimSpace(cmdOut(ctx, repo, "git", "rev-parse", "HEAD"))
	m.GitDirty = strings.TrimSpace(cmdOut(ctx, repo, "git", "status", "--porcelain", "--untracked-files=no")) != ""
	return m
}

func cmdOut(ctx context.Context, dir, name string, args ...string) string {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, _ := cmd.Output()
	return string(out)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// offloads returns the checksum/segmentation offload lines of `ethtool -k` for the pod's
// interface.
func offloads(ctx context.Context, p pod) string {
	out, err := inNetNS(ctx, p.NetNS, "ethtool", "-k", p.IfName).Output()
	if err != nil {
		return "ethtool failed: " + err.Error()
	}
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		l := strings.TrimSpace(line)
		// tx-tcp-segmentation besides the summary: on Linux 6.18 the summary also counts
		// tx-tcp-accecn-segmentation, which stays on with tx checksumming off.
		for _, p := range []string{"rx-checksumming:", "tx-checksumming:", "tcp-segmentation-offload:", "tx-tcp-segmentation:", "generic-segmentation-offload:", "generic-receive-offload:"} {
			if strings.HasPrefix(l, p) {
				keep = append(keep, l)
			}
		}
	}
	return strings.Join(keep, "; ")
}
