// Command images builds sdncni's container images and the test images without a
// container engine, as archives `ctr -n k8s.io images import FILE` accepts, into
// _output/images/<name>.tar; it prints each image's reference, manifest digest and
// compressed size. See docs/deploy.md, "Images".
//
//	go run ./hack/images [--only sdncni,pause] [--out _output/images]
//
// SOURCE_DATE_EPOCH sets every timestamp (default: the HEAD commit's time).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// builder holds what every image build needs; one per run.
type builder struct {
	repo       string // our module's root
	cache      string // ${XDG_CACHE_HOME:-$HOME/.cache}/sdncni
	version    string
	agnhostTag string
	epoch      time.Time
	sources    aptSources
}

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	only := flag.String("only", "", "comma-separated image names to build (default: all)")
	out := flag.String("out", "_output/images", "directory for the archives")
	version := flag.String("version", "", "sdncni version (default: git describe --always --dirty)")
	flag.Parse()

	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	b := &builder{repo: repo, version: *version}
	if b.version == "" {
		if b.version, err = git(ctx, repo, "describe", "--always", "--dirty"); err != nil {
			return err
		}
	}
	if b.epoch, err = sourceDateEpoch(ctx, repo); err != nil {
		return err
	}
	cache, err := os.UserCacheDir() // $XDG_CACHE_HOME or $HOME/.cache
	if err != nil {
		return err
	}
	b.cache = filepath.Join(cache, "sdncni")
	if b.sources, err = machineSources("/etc/apt", suite); err != nil {
		return err
	}
	if b.agnhostTag, err = b.agnhostVersion(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}

	specs := b.specs()
	var want []string
	if *only != "" {
		want = strings.Split(*only, ",")
		for _, w := range want {
			if !slices.ContainsFunc(specs, func(s imageSpec) bool { return s.name == w }) {
				return fmt.Errorf("unknown image %q", w)
			}
		}
	}
	for _, s := range specs {
		if want != nil && !slices.Contains(want, s.name) {
			continue
		}
		start := time.Now()
		res, err := b.build(ctx, s, filepath.Join(*out, s.name+".tar"))
		if err != nil {
			return fmt.Errorf("image %s: %w", s.name, err)
		}
		for _, ref := range s.refs {
			fmt.Printf("%-62s %s %7.1f MiB\n", ref, res.digest, float64(res.size)/(1<<20))
		}
		fmt.Fprintf(os.Stderr, "images: %s: %s in %.1fs\n", s.name, res.file, time.Since(start).Seconds())
	}
	return nil
}

func (b *builder) agnhostVersion(ctx context.Context) (string, error) {
	k8s, _, err := b.moduleDir(ctx, "k8s.io/kubernetes", k8sVersion)
	if err != nil {
		return "", err
	}
	v, err := os.ReadFile(filepath.Join(k8s, "test/images/agnhost/VERSION"))
	if err != nil {
		return "", fmt.Errorf("agnhost version: %w", err)
	}
	return strings.TrimSpace(string(v)), nil
}

// sourceDateEpoch is $SOURCE_DATE_EPOCH, else the HEAD commit time.
func sourceDateEpoch(ctx context.Context, repo string) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		var err error
		if s, err = git(ctx, repo, "log", "-1", "--format=%ct"); err != nil {
			return time.Time{}, err
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

func git(ctx context.Context, repo string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
