package ovs_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/ovs"
)

// env is one OVS/OVN environment for the whole package: starting the daemons costs
// seconds, and every test cleans up the rows it made.
var env testenv.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop OVS/OVN:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testLog discards: libovsdb logs from goroutines that can outlive a test, and t.Log
// after a test ends panics.
func testLog(*testing.T) logr.Logger { return logr.Discard() }

func newVSwitch(t *testing.T) (*testenv.OVN, *ovs.VSwitch) {
	t.Helper()
	o := env.Get(t)
	v, err := ovs.NewVSwitch(testCtx(t), o.OVSDB, testLog(t))
	require.NoError(t, err)
	t.Cleanup(v.Close)
	return o, v
}

func newNorthbound(t *testing.T) (*testenv.OVN, *ovs.Northbound) {
	t.Helper()
	o := env.Get(t)
	n, err := ovs.NewNorthbound(testCtx(t), o.NBDB, testLog(t))
	require.NoError(t, err)
	t.Cleanup(n.Close)
	return o, n
}
