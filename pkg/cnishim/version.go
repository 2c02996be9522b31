package cnishim

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/containernetworking/cni/pkg/types"
)

// PrintVersion answers CNI_COMMAND=VERSION as the spec says: the cniVersion given on
// input (skel would print its own) and the versions we support. Without a cniVersion on
// input it answers with the newest version we support.
func PrintVersion(stdin io.Reader, stdout io.Writer) error {
	data, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		return types.NewError(types.ErrIOFailure, "read stdin", err.Error())
	}
	supported := SupportedVersions.SupportedVersions()
	in := struct {
		CNIVersion string `json:"cniVersion"`
	}{}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &in); err != nil {
			return types.NewError(types.ErrDecodingFailure, "decode VERSION input", err.Error())
		}
	}
	if in.CNIVersion == "" {
		in.CNIVersion = supported[len(supported)-1]
	}
	out := struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}{in.CNIVersion, supported}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		return fmt.Errorf("write VERSION: %w", err)
	}
	return nil
}
