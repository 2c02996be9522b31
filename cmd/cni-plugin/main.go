// Command sdncni is the CNI plugin binary: a thin shim that forwards each request to the
// node's sdncni-controller over a unix socket (see package cnishim).
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/sdncni/sdncni/internal/version"
	"github.com/sdncni/sdncni/pkg/cnishim"
)

func main() {
	if os.Getenv("CNI_COMMAND") == "VERSION" {
		if err := cnishim.PrintVersion(os.Stdin, os.Stdout); err != nil {
			if te, ok := err.(*types.Error); ok {
				_ = te.Print()
			}
			os.Exit(1)
		}
		return
	}
	skel.PluginMainFuncs(cnishim.Funcs(os.Stdout), cnishim.SupportedVersions,
		"sdncni "+version.Version+": CNI plugin for OVS/OVN with an eBPF fast path")
}
