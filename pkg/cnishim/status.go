package cnishim

import (
	"fmt"
	"io"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// RunStatus answers CNI_COMMAND=STATUS from the configuration on stdin alone. The spec
// requires no other variable for STATUS, but skel insists on CNI_PATH, and a runtime that
// leaves it out (as the spec allows) would see our network as broken. It makes the
// version checks skel makes: a configuration older than 1.1.0, or newer than we speak,
// is code 1. Every error it returns is a *types.Error.
func RunStatus(stdin io.Reader, stdout io.Writer) error {
	data, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		return types.NewError(types.ErrIOFailure, "read stdin", err.Error())
	}
	confVersion, err := (&version.ConfigDecoder{}).Decode(data)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	atLeast, err := version.GreaterThanOrEqualTo(confVersion, "1.1.0")
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	if !atLeast {
		return types.NewError(types.ErrIncompatibleCNIVersion, "config version does not allow STATUS", "")
	}
	if !supported(confVersion) {
		return types.NewError(types.ErrIncompatibleCNIVersion, "incompatible CNI versions",
			fmt.Sprintf("config is %q, plugin supports %q", confVersion, SupportedVersions.SupportedVersions()))
	}
	err = (&shim{stdout: stdout}).run("STATUS", &skel.CmdArgs{StdinData: data})
	if err == nil {
		return nil
	}
	if _, ok := err.(*types.Error); ok {
		return err
	}
	return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
}

func supported(v string) bool {
	for _, s := range SupportedVersions.SupportedVersions() {
		if s == v {
			return true
		}
	}
	return false
}
