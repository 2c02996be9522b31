package cniserver

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/cniapi"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/podnet"
)

func TestToCNIError(t *testing.T) {
	cases := []struct {
		err  error
		code uint
	}{
		{fmt.Errorf("allocate: %w", ipam.ErrExhausted), CodeAddressesExhausted},
		{fmt.Errorf("x: %w", attach.ErrExists), CodeAlreadyAttached},
		{fmt.Errorf("x: %w", podnet.ErrIfaceExists), CodeAlreadyAttached},
		{fmt.Errorf("x: %w", ipam.ErrCorrupt), CodeStoreCorrupt},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), types.ErrTryAgainLater},
		{types.NewError(types.ErrInvalidNetworkConfig, "bad", ""), types.ErrInvalidNetworkConfig},
		{errors.New("something else"), types.ErrInternal},
	}
	for _, c := range cases {
		require.Equal(t, c.code, toCNIError("add", c.err).Code, c.err.Error())
	}
}

func TestAttachRequest(t *testing.T) {
	r, terr := attachRequest(&cniapi.Request{Command: "ADD", ContainerID: "c1", IfName: "eth0", Netns: "/n",
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p1;K8S_POD_UID=u;FOO=bar"})
	require.Nil(t, terr)
	require.Equal(t, "ns1", r.PodNamespace)
	require.Equal(t, "p1", r.PodName)

	r, terr = attachRequest(&cniapi.Request{Command: "DEL", ContainerID: "c1", IfName: "eth0"})
	require.Nil(t, terr, "DEL needs no netns")
	require.Equal(t, defaultNamespace, r.PodNamespace)

	_, terr = attachRequest(&cniapi.Request{Command: "ADD", ContainerID: "c1", IfName: "eth0", Netns: "/n", Args: "FOO=bar"})
	require.NotNil(t, terr, "unknown key without IgnoreUnknown")
	require.Equal(t, uint(types.ErrInvalidEnvironmentVariables), terr.Code)

	_, terr = attachRequest(&cniapi.Request{Command: "ADD", ContainerID: "c1", IfName: "eth0"})
	require.NotNil(t, terr, "ADD needs a netns")
}

func TestValidAttachmentsBothKeys(t *testing.T) {
	keys, err := validAttachments([]byte(`{"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
		"cni.dev/attachments":[{"containerID":"b","ifname":"net1"}]}`))
	require.NoError(t, err)
	require.ElementsMatch(t, []attach.Key{{ContainerID: "a", IfName: "eth0"}, {ContainerID: "b", IfName: "net1"}}, keys)
	_, err = validAttachments([]byte(`{`))
	require.Error(t, err)
}
