package cnishim

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/sdncni/sdncni/pkg/cniapi"
)

// DefaultTimeout bounds one request to the controller. ADD includes waiting for
// ovn-controller to install the port, so it is generous.
const DefaultTimeout = 30 * time.Second

// StatusTimeout bounds STATUS (or the configured timeout, if shorter). Runtimes poll STATUS
// on their own deadline to set the node's NetworkReady (containerd's CRI Status call,
// kubelet's node status); a stuck controller must not hold them for an ADD's 30 s.
const StatusTimeout = 3 * time.Second

// NetConf is the plugin's entry in a conflist.
type NetConf struct {
	types.PluginConf
	// Socket is the controller's unix socket; default cniapi.DefaultSocket.
	Socket string `json:"socket,omitempty"`
	// Timeout bounds one request to the controller, as a Go duration ("30s").
	Timeout string `json:"timeout,omitempty"`
	// LogFile receives one line per command; default stderr.
	LogFile string `json:"logFile,omitempty"`

	timeout time.Duration
}

// ParseConfig decodes and validates the plugin configuration. Every error it returns is a
// *types.Error with code 7 (invalid network config) naming the offending key.
func ParseConfig(data []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", err.Error())
	}
	if conf.Name == "" {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config: \"name\" is required", "")
	}
	if conf.Socket == "" {
		conf.Socket = cniapi.DefaultSocket
	}
	if !filepath.IsAbs(conf.Socket) {
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("invalid network config: \"socket\" must be an absolute path, got %q", conf.Socket), "")
	}
	conf.timeout = DefaultTimeout
	if conf.Timeout != "" {
		d, err := time.ParseDuration(conf.Timeout)
		if err != nil || d <= 0 {
			return nil, types.NewError(types.ErrInvalidNetworkConfig,
				fmt.Sprintf("invalid network config: \"timeout\" must be a positive duration, got %q", conf.Timeout), "")
		}
		conf.timeout = d
	}
	if conf.LogFile != "" && !filepath.IsAbs(conf.LogFile) {
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("invalid network config: \"logFile\" must be an absolute path, got %q", conf.LogFile), "")
	}
	return conf, nil
}
