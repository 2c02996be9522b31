package cniserver

import (
	"encoding/json"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/cniapi"
)

// k8sArgs are the CNI_ARGS a Kubernetes runtime passes.
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // names fixed by the runtime
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive
	K8S_POD_UID                types.UnmarshallableString //nolint:revive
}

// defaultNamespace is used for pods started by a runtime that passes no Kubernetes args
// (cnitool, tests): they land in the default network.
const defaultNamespace = "default"

func attachRequest(req *cniapi.Request) (attach.Request, *types.Error) {
	var a k8sArgs
	if err := types.LoadArgs(req.Args, &a); err != nil {
		return attach.Request{}, types.NewError(types.ErrInvalidEnvironmentVariables, "invalid CNI_ARGS", err.Error())
	}
	ns := string(a.K8S_POD_NAMESPACE)
	if ns == "" {
		ns = defaultNamespace
	}
	if req.ContainerID == "" || req.IfName == "" {
		return attach.Request{}, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_CONTAINERID and CNI_IFNAME are required", "")
	}
	if (req.Command == "ADD" || req.Command == "CHECK") && req.Netns == "" {
		return attach.Request{}, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_NETNS is required", "")
	}
	return attach.Request{
		Key:          attach.Key{ContainerID: req.ContainerID, IfName: req.IfName},
		Netns:        req.Netns,
		PodNamespace: ns,
		PodName:      string(a.K8S_POD_NAME),
	}, nil
}

// gcConfig holds the valid attachments of a GC request under both names libcni uses.
type gcConfig struct {
	Valid  []types.GCAttachment `json:"cni.dev/valid-attachments"`
	Legacy []types.GCAttachment `json:"cni.dev/attachments"`
}

func validAttachments(config []byte) ([]attach.Key, error) {
	var c gcConfig
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	var keys []attach.Key
	for _, a := range append(c.Valid, c.Legacy...) {
		keys = append(keys, attach.Key{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	return keys, nil
}
