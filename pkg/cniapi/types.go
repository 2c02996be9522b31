package cniapi

import (
	"encoding/json"

	"github.com/containernetworking/cni/pkg/types"
)

// DefaultSocket is where the controller serves the CNI protocol unless the network
// configuration names another path.
const DefaultSocket = "/run/sdncni/cni.sock"

// Paths served by the controller.
const (
	PathCNI    = "/v1/cni"
	PathStatus = "/v1/status"
)

// Request carries one CNI command from the shim to the controller: the CNI_* environment
// and the network configuration the runtime gave on stdin.
type Request struct {
	Command     string `json:"command"`
	ContainerID string `json:"containerID,omitempty"`
	Netns       string `json:"netns,omitempty"`
	IfName      string `json:"ifName,omitempty"`
	Args        string `json:"args,omitempty"`
	Path        string `json:"path,omitempty"`
	// Config is the network configuration (stdin) exactly as the runtime sent it.
	Config json.RawMessage `json:"config"`
}

// Response is the controller's answer. Exactly one of Result and Error is set for ADD;
// other commands set only Error, and only on failure.
type Response struct {
	// Result is a CNI result in the current spec version; the shim converts it to the
	// version the runtime asked for.
	Result json.RawMessage `json:"result,omitempty"`
	Error  *types.Error    `json:"error,omitempty"`
}
