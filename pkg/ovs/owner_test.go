package ovs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOwnerRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		owner Owner
		keys  int
	}{
		{"full", Owner{PodNamespace: "ns", PodName: "p", ContainerID: "c1", IfName: "eth0", Network: "blue"}, 6},
		{"partial", Owner{ContainerID: "c1", IfName: "eth0"}, 3},
		{"empty", Owner{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := tt.owner.ExternalIDs()
			require.Len(t, ids, tt.keys)
			require.Equal(t, OwnerValue, ids[KeyOwner])
			got, ok := OwnerFromExternalIDs(ids)
			require.True(t, ok)
			require.Equal(t, tt.owner, got)
		})
	}
}

func TestOwnerFromForeignExternalIDs(t *testing.T) {
	for _, ids := range []map[string]string{
		nil,
		{KeyIfaceID: "x"},
		{KeyOwner: "someone-else", KeyPodName: "p"},
	} {
		_, ok := OwnerFromExternalIDs(ids)
		require.False(t, ok, "%v", ids)
	}
}
