package podnet

import (
	"fmt"
	"strings"

	"github.com/safchain/ethtool"
)

// DisableTxOffload turns off transmit checksum offload on ifname, and with it every
// segmentation offload that depends on it (the kernel drops TSO/USO without a checksum
// feature), as `ethtool -K ifname tx off` does: the pod's stack then hands the device only
// complete, checksummed, MTU-sized frames. It must run in the namespace of ifname (the
// ethtool socket belongs to the namespace it is created in).
//
// Why: OVS 3.1's userspace datapath cannot put TSO packets or packets with a pending
// checksum into a Geneve tunnel, so with tx offload on, pod TCP across nodes connects and
// then moves nothing.
func DisableTxOffload(ifname string) error {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return fmt.Errorf("open ethtool socket: %w", err)
	}
	defer e.Close()
	states, err := e.FeaturesWithState(ifname)
	if err != nil {
		return fmt.Errorf("read features of %s: %w", ifname, err)
	}
	off := map[string]bool{}
	for name, st := range states {
		if strings.HasPrefix(name, "tx-checksum") && st.Available && st.Active {
			off[name] = false
		}
	}
	if len(off) == 0 {
		return nil
	}
	if err := e.Change(ifname, off); err != nil {
		return fmt.Errorf("turn tx offload off on %s: %w", ifname, err)
	}
	active, err := e.Features(ifname)
	if err != nil {
		return fmt.Errorf("read features of %s: %w", ifname, err)
	}
	for _, name := range []string{"tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6", "tx-tcp-segmentation", "tx-tcp6-segmentation"} {
		if active[name] {
			return fmt.Errorf("turn tx offload off on %s: %s still on", ifname, name)
		}
	}
	return nil
}
