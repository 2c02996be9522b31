package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary act as the plugin when re-executed by a test, so the
// tests drive the real main with a real environment.
func TestMain(m *testing.M) {
	if os.Getenv("SDNCNI_TEST_RUN_PLUGIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runPlugin runs main with exactly env (nothing inherited) and stdin.
func runPlugin(t *testing.T, env []string, stdin string) (stdout []byte, exitErr error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append([]string{"SDNCNI_TEST_RUN_PLUGIN=1"}, env...)
	cmd.Stdin = bytes.NewBufferString(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// TestStatusNeedsOnlyCommand: the spec requires nothing but CNI_COMMAND for STATUS (skel
// would demand CNI_PATH and answer code 4). With no controller the answer is 50.
func TestStatusNeedsOnlyCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent.sock")
	conf := `{"cniVersion":"1.1.0","name":"n","type":"sdncni","socket":"` + sock + `"}`
	out, err := runPlugin(t, []string{"CNI_COMMAND=STATUS"}, conf)
	require.Error(t, err, "STATUS without a controller must fail")
	var te types.Error
	require.NoError(t, json.Unmarshal(out, &te), "stdout: %s", out)
	require.Equal(t, uint(types.ErrPluginNotAvailable), te.Code, te.Error())

	// ADD still goes through skel's checks: a missing CNI_PATH is code 4.
	out, err = runPlugin(t, []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=c1", "CNI_NETNS=/proc/self/ns/net", "CNI_IFNAME=eth0"}, conf)
	require.Error(t, err)
	require.NoError(t, json.Unmarshal(out, &te), "stdout: %s", out)
	require.Equal(t, uint(types.ErrInvalidEnvironmentVariables), te.Code, te.Error())
}

func TestVersion(t *testing.T) {
	out, err := runPlugin(t, []string{"CNI_COMMAND=VERSION"}, `{"cniVersion":"1.0.0"}`)
	require.NoError(t, err)
	var v struct {
		CNIVersion string `json:"cniVersion"`
	}
	require.NoError(t, json.Unmarshal(out, &v))
	require.Equal(t, "1.0.0", v.CNIVersion)
}
