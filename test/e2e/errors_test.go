package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/cniserver"
)

// execPlugin runs the binary the way a runtime does and returns stdout and exit code.
func execPlugin(t *testing.T, env map[string]string, stdin string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "sdncni"))
	cmd.Env = []string{"CNI_PATH=" + binaries(t)}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = bytes.NewBufferString(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return out.String(), code
}

func errorCode(t *testing.T, stdout string) (uint, string) {
	t.Helper()
	var e types.Error
	require.NoError(t, json.Unmarshal([]byte(stdout), &e), "stdout is not a CNI error: %q", stdout)
	return e.Code, e.Msg
}

// TestBadInputCodes: each kind of bad input gets its CNI code and a message naming the
// problem, and nothing is left behind.
func TestBadInputCodes(t *testing.T) {
	n := newNode(t)
	p := newPod(t, "bad")
	good := func(extra string) string {
		return fmt.Sprintf(`{"cniVersion":"1.1.0","name":"sdncni-e2e","type":"sdncni","socket":%q%s}`, n.socket, extra)
	}
	baseEnv := func(cmd string) map[string]string {
		return map[string]string{"CNI_COMMAND": cmd, "CNI_CONTAINERID": p.containerID, "CNI_NETNS": p.netns,
			"CNI_IFNAME": "eth0", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=bad"}
	}
	cases := []struct {
		name    string
		env     func() map[string]string
		stdin   string
		code    uint
		msgPart string
	}{
		{"bad timeout value", func() map[string]string { return baseEnv("ADD") }, good(`,"timeout":"soon"`), types.ErrInvalidNetworkConfig, "timeout"},
		{"relative socket", func() map[string]string { return baseEnv("ADD") }, `{"cniVersion":"1.1.0","name":"x","type":"sdncni","socket":"cni.sock"}`, types.ErrInvalidNetworkConfig, "socket"},
		{"socket of wrong type", func() map[string]string { return baseEnv("ADD") }, `{"cniVersion":"1.1.0","name":"x","type":"sdncni","socket":42}`, types.ErrInvalidNetworkConfig, "invalid network config"},
		{"no name", func() map[string]string { return baseEnv("ADD") }, `{"cniVersion":"1.1.0","type":"sdncni"}`, types.ErrInvalidNetworkConfig, "name"},
		{"undecodable config", func() map[string]string { return baseEnv("ADD") }, `{"cniVersion":`, types.ErrDecodingFailure, ""},
		{"unsupported version", func() map[string]string { return baseEnv("ADD") }, `{"cniVersion":"0.3.1","name":"x","type":"sdncni"}`, types.ErrIncompatibleCNIVersion, "0.3.1"},
		{"ifname with slash", func() map[string]string { e := baseEnv("ADD"); e["CNI_IFNAME"] = "eth/0"; return e }, good(""), types.ErrInvalidEnvironmentVariables, ""},
		{"ifname too long", func() map[string]string { e := baseEnv("ADD"); e["CNI_IFNAME"] = "averyveryverylongname"; return e }, good(""), types.ErrInvalidEnvironmentVariables, ""},
		{"no container id", func() map[string]string { e := baseEnv("ADD"); delete(e, "CNI_CONTAINERID"); return e }, good(""), types.ErrInvalidEnvironmentVariables, "CNI_CONTAINERID"},
		{"bad container id", func() map[string]string { e := baseEnv("ADD"); e["CNI_CONTAINERID"] = "-bad id"; return e }, good(""), types.ErrInvalidEnvironmentVariables, ""},
		{"unknown CNI_ARGS key", func() map[string]string { e := baseEnv("ADD"); e["CNI_ARGS"] = "FOO=bar"; return e }, good(""), types.ErrInvalidEnvironmentVariables, "CNI_ARGS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, exit := execPlugin(t, tc.env(), tc.stdin)
			require.NotZero(t, exit)
			code, msg := errorCode(t, out)
			require.Equal(t, tc.code, code, "stdout: %s", out)
			require.Contains(t, msg+out, tc.msgPart)
			require.Empty(t, n.leftovers(t))
		})
	}
}

// TestVersion: VERSION names 1.0.0 and 1.1.0 and echoes the input version.
func TestVersion(t *testing.T) {
	out, exit := execPlugin(t, map[string]string{"CNI_COMMAND": "VERSION"}, `{"cniVersion":"1.0.0"}`)
	require.Zero(t, exit, out)
	var v struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, "1.0.0", v.CNIVersion)
	require.Contains(t, v.SupportedVersions, "1.0.0")
	require.Contains(t, v.SupportedVersions, "1.1.0")
}

// TestDuplicateIfname: the pod already has eth0: ADD fails with our code and leaves
// nothing behind (and does not touch the pod's existing interface).
func TestDuplicateIfname(t *testing.T) {
	n := newNode(t)
	p := newPod(t, "dup")
	out, err := inPod(p, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
	require.NoError(t, err, string(out))
	_, err = n.add(t, "1.1.0", p)
	require.Equal(t, cniserver.CodeAlreadyAttached, cniCode(t, err))
	require.Empty(t, n.leftovers(t))
	out, err = inPod(p, "ip", "link", "show", "eth0")
	require.NoError(t, err)
	require.Contains(t, string(out), "eth0")

	// A second ADD of an attachment that exists is refused the same way.
	q := newPod(t, "twice")
	n.mustAdd(t, "1.1.0", q)
	_, err = n.add(t, "1.1.0", q)
	require.Equal(t, cniserver.CodeAlreadyAttached, cniCode(t, err))
	require.NoError(t, n.check(t, "1.1.0", q), "the refused ADD must not damage the attachment")
	require.NoError(t, n.del(t, "1.1.0", q))
	require.Empty(t, n.leftovers(t))
}

// TestExhaustedPool: a /29 has five pod addresses; the sixth ADD fails with our code and
// leaves nothing of itself behind.
func TestExhaustedPool(t *testing.T) {
	n := newNode(t, withCIDR("10.78.0.0/29"))
	var pods []*pod
	for i := range 5 {
		p := newPod(t, fmt.Sprintf("p%d", i))
		n.mustAdd(t, "1.1.0", p)
		pods = append(pods, p)
	}
	extra := newPod(t, "extra")
	_, err := n.add(t, "1.1.0", extra)
	require.Equal(t, cniserver.CodeAddressesExhausted, cniCode(t, err))
	out, _ := inPod(extra, "ip", "-o", "link", "show")
	require.NotContains(t, string(out), "eth0", "failed ADD left an interface in the pod")
	for _, p := range pods {
		require.NoError(t, n.del(t, "1.1.0", p))
	}
	require.Empty(t, n.leftovers(t))
}

// TestControllerUnreachable: with the controller down, ADD/DEL/CHECK answer 11 and
// STATUS 50; once it is back, STATUS succeeds and ADD works.
func TestControllerUnreachable(t *testing.T) {
	n := newNode(t)
	p := newPod(t, "later")
	n.stopController()
	_, err := n.add(t, "1.1.0", p)
	require.Equal(t, uint(types.ErrTryAgainLater), cniCode(t, err))
	require.Equal(t, uint(types.ErrTryAgainLater), cniCode(t, n.del(t, "1.1.0", p)))
	require.Equal(t, uint(types.ErrTryAgainLater), cniCode(t, n.check(t, "1.1.0", p)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = n.cni().GetStatusNetworkList(ctx, n.confList(t, "1.1.0"))
	require.Equal(t, uint(types.ErrPluginNotAvailable), cniCode(t, err))

	n.startController()
	require.NoError(t, n.cni().GetStatusNetworkList(ctx, n.confList(t, "1.1.0")))
	n.mustAdd(t, "1.1.0", p)
	require.NoError(t, n.del(t, "1.1.0", p))
	require.Empty(t, n.leftovers(t))
}
