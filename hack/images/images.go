package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sdncni/sdncni/internal/ociimage"
)

const (
	k8sVersion     = "v1.37.2"
	corednsVersion = "v1.15.0"
	suite          = "bookworm"
	defaultPath    = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// imageSpec is one image: an optional Debian rootfs layer, then one layer of files
// that fill puts into a directory laid out like the image's root.
type imageSpec struct {
	name      string // archive name under the output directory
	refs      []string
	rootfs    *rootfs
	fill      func(ctx context.Context, dir string) error
	createdBy string
	config    ociimage.Config
}

// specs lists every image, the sdncni image first.
func (b *builder) specs() []imageSpec {
	e2e := "sdncni.local/e2e-test-images/"
	return []imageSpec{{
		name: "sdncni",
		// :dev is what deploy/kustomization.yaml names; pin the printed digest there for
		// anything but a throw-away cluster.
		refs: []string{"sdncni.local/sdncni:" + b.version, "sdncni.local/sdncni:dev"},
		rootfs: &rootfs{suite: suite, packages: []string{
			"openvswitch-switch", "ovn-host", "ovn-central", "iproute2", "nftables",
			"ethtool", "conntrack", "procps", "ca-certificates", // kmod comes with openvswitch-switch
		}},
		fill:      b.fillSdncni,
		createdBy: "sdncni " + b.version + ": controller, CNI shim, reference portmap and bandwidth",
		config:    ociimage.Config{Env: []string{defaultPath}},
	}, {
		name:      "pause",
		refs:      []string{"sdncni.local/pause:3.10", "sdncni.local/pause:3.10.2"},
		fill:      b.fillPause,
		createdBy: "gcc -static build/pause/linux/pause.c of k8s.io/kubernetes@" + k8sVersion,
		config:    ociimage.Config{Entrypoint: []string{"/pause"}},
	}, {
		name: "agnhost",
		refs: []string{e2e + "agnhost:" + b.agnhostTag},
		rootfs: &rootfs{suite: suite, packages: []string{
			"bash", "curl", "netcat-openbsd", "dnsutils", "iproute2", "iputils-ping", "procps",
			"socat", "iperf", "ca-certificates",
		}},
		fill:      b.fillAgnhost,
		createdBy: "agnhost of k8s.io/kubernetes@" + k8sVersion + ", coredns " + corednsVersion,
		config:    ociimage.Config{Env: []string{defaultPath}, Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}},
	}, {
		name:      "busybox",
		refs:      []string{e2e + "busybox:1.37.0-2"},
		fill:      b.fillBusybox,
		createdBy: "Debian busybox-static with applet links",
		config:    ociimage.Config{Env: []string{defaultPath}, Cmd: []string{"sh"}},
	}, {
		name:      "glibc-dns-testing",
		refs:      []string{e2e + "glibc-dns-testing:2.1.1"},
		rootfs:    &rootfs{suite: suite, packages: []string{"dnsutils"}},
		fill:      b.fillCoreDNS,
		createdBy: "coredns " + corednsVersion,
		config:    ociimage.Config{Env: []string{defaultPath}, Cmd: []string{"bash"}},
	}, {
		name:   "nginx",
		refs:   []string{e2e + "nginx:1.27.0-2", e2e + "nginx:1.28.0-2"},
		rootfs: &rootfs{suite: suite, packages: []string{"nginx-light"}},
		config: ociimage.Config{Env: []string{defaultPath}, Cmd: []string{"nginx", "-g", "daemon off;"}},
	}, {
		name:      "coredns",
		refs:      []string{"sdncni.local/coredns:" + corednsVersion},
		fill:      b.fillCoreDNS,
		createdBy: "coredns " + corednsVersion + " from the Go module",
		config:    ociimage.Config{Entrypoint: []string{"/coredns"}},
	}}
}

func (b *builder) fillSdncni(ctx context.Context, dir string) error {
	bin := filepath.Join(dir, "usr/local/bin")
	cni := filepath.Join(dir, "opt/sdncni/cni")
	if err := mkdirs(bin, cni); err != nil {
		return err
	}
	if err := b.ourBinaries(ctx, bin); err != nil {
		return err
	}
	plugins, _, err := b.referencePlugins(ctx)
	if err != nil {
		return err
	}
	for dst, src := range map[string]string{
		filepath.Join(cni, "sdncni"):    filepath.Join(bin, "sdncni"),
		filepath.Join(cni, "portmap"):   filepath.Join(plugins, "portmap"),
		filepath.Join(cni, "bandwidth"): filepath.Join(plugins, "bandwidth"),
	} {
		if err := copyFile(src, dst, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) fillPause(ctx context.Context, dir string) error {
	k8s, _, err := b.moduleDir(ctx, "k8s.io/kubernetes", k8sVersion)
	if err != nil {
		return err
	}
	src := filepath.Join(k8s, "build/pause/linux/pause.c")
	// The flags of build/pause/Makefile; VERSION names the release it came from.
	_, err = b.run(ctx, dir, nil, "gcc", "-Os", "-Wall", "-Werror", "-static",
		"-DVERSION=v3.10.2-"+k8sVersion, "-o", filepath.Join(dir, "pause"), src)
	if err != nil {
		return fmt.Errorf("build pause: %w", err)
	}
	if _, err := b.run(ctx, dir, nil, "strip", filepath.Join(dir, "pause")); err != nil {
		return fmt.Errorf("strip pause: %w", err)
	}
	return nil
}

func (b *builder) fillAgnhost(ctx context.Context, dir string) error {
	k8s, gomod, err := b.moduleDir(ctx, "k8s.io/kubernetes", k8sVersion)
	if err != nil {
		return err
	}
	reps, err := b.stagingReplaces(ctx, gomod, k8sVersion)
	if err != nil {
		return err
	}
	agn, err := b.wrapperBuild(ctx, "k8s.io/kubernetes", k8sVersion, "k8s.io/kubernetes/test/images/agnhost",
		"agnhost", "-X main.Version="+b.agnhostTag, reps)
	if err != nil {
		return err
	}
	if err := copyFile(agn, filepath.Join(dir, "agnhost"), 0o755); err != nil {
		return err
	}
	// As the upstream Dockerfile: agnhost-2 for the entrypoint tests, /uploads for
	// netexec, porter's certificate and key, coredns for DNS tests.
	if err := os.Symlink("agnhost", filepath.Join(dir, "agnhost-2")); err != nil {
		return err
	}
	if err := mkdirs(filepath.Join(dir, "uploads")); err != nil {
		return err
	}
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		if err := copyFile(filepath.Join(k8s, "test/images/agnhost/porter", f), filepath.Join(dir, f), 0o644); err != nil {
			return err
		}
	}
	return b.fillCoreDNS(ctx, dir)
}

func (b *builder) fillCoreDNS(ctx context.Context, dir string) error {
	bin, err := b.wrapperBuild(ctx, "github.com/coredns/coredns", corednsVersion, "github.com/coredns/coredns",
		"coredns", "-X github.com/coredns/coredns/coremain.GitCommit="+corednsVersion, nil)
	if err != nil {
		return err
	}
	return copyFile(bin, filepath.Join(dir, "coredns"), 0o755)
}

// fillBusybox uses the machine's busybox-static package (Debian's static build).
func (b *builder) fillBusybox(ctx context.Context, dir string) error {
	if _, err := b.run(ctx, dir, nil, "dpkg-query", "-W", "busybox-static"); err != nil {
		return fmt.Errorf("busybox image needs the busybox-static package (apt-get install busybox-static): %w", err)
	}
	if err := mkdirs(filepath.Join(dir, "bin"), filepath.Join(dir, "etc"), filepath.Join(dir, "tmp")); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	if err := copyFile("/bin/busybox", filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return err
	}
	list, err := b.run(ctx, dir, nil, "/bin/busybox", "--list-full")
	if err != nil {
		return err
	}
	for _, applet := range strings.Fields(list) {
		if applet == "bin/busybox" {
			continue
		}
		p := filepath.Join(dir, applet)
		if err := mkdirs(filepath.Dir(p)); err != nil {
			return err
		}
		if err := os.Symlink("/bin/busybox", p); err != nil && !os.IsExist(err) {
			return fmt.Errorf("link applet %s: %w", applet, err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for p, data := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}
