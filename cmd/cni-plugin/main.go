// Command sdncni is the CNI plugin binary: a thin shim that forwards each request to the
// node's sdncni-controller over a unix socket (see package cnishim).
package main

import (
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/sdncni/sdncni/internal/version"
	"github.com/sdncni/sdncni/pkg/cnishim"
)

func main() {
	// VERSION and STATUS are answered here rather than by skel: skel prints its own
	// cniVersion for VERSION and requires CNI_PATH for STATUS, which the spec does not.
	switch os.Getenv("CNI_COMMAND") {
	case "VERSION":
		exitOn(cnishim.PrintVersion(os.Stdin, os.Stdout))
	case "STATUS":
		exitOn(cnishim.RunStatus(os.Stdin, io.Discard))
	default:
		skel.PluginMainFuncs(cnishim.Funcs(os.Stdout), cnishim.SupportedVersions,
			"sdncni "+version.Version+": CNI plugin for OVS/OVN with an eBPF fast path")
	}
}

// exitOn prints err as the CNI error JSON on stdout and exits 1; nil returns.
func exitOn(err error) {
	if err == nil {
		return
	}
	te, ok := err.(*types.Error)
	if !ok {
		te = types.NewError(types.ErrInternal, err.Error(), "")
	}
	_ = te.Print()
	os.Exit(1)
}
