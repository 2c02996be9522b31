// Command sdncni-controller is the per-node controller: CNI server, IPAM, OVS/OVN
// plumbing and the eBPF fast path.
package main

import (
	"fmt"

	"github.com/sdncni/sdncni/internal/version"
)

func main() {
	fmt.Println("sdncni-controller", version.Version)
}
