//go:build linux

package datapath

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

const bpffsRoot = "/sys/fs/bpf"

// ensureBPFFS mounts bpffs at /sys/fs/bpf when pinDir lies below it and nothing is
// mounted there yet, then checks that pinDir's closest existing ancestor is on bpffs.
func ensureBPFFS(pinDir string) error {
	if strings.HasPrefix(filepath.Clean(pinDir)+"/", bpffsRoot+"/") {
		if ok, err := isBPFFS(bpffsRoot); err != nil {
			return err
		} else if !ok {
			if err := unix.Mount("bpffs", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
				return fmt.Errorf("mount bpffs at %s: %w", bpffsRoot, err)
			}
		}
	}
	dir := filepath.Clean(pinDir)
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	ok, err := isBPFFS(dir)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("pin directory %s: %s is not on bpffs", pinDir, dir)
	}
	return nil
}

func isBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint32(st.Type) == unix.BPF_FS_MAGIC, nil
}
