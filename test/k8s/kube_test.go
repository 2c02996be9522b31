package k8s

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
)

// kube drives the cluster with its kubectl.
type kube struct {
	t   *testing.T
	c   *testenv.K8sCluster
	ctx context.Context
}

// on returns k reporting to t (a subtest must not fail its parent).
func (k *kube) on(t *testing.T) *kube { return &kube{t: t, c: k.c, ctx: k.ctx} }

func (k *kube) kubectl(args ...string) string {
	k.t.Helper()
	out, err := k.c.Kubectl(k.ctx, args...)
	require.NoError(k.t, err)
	return out
}

func (k *kube) get(kind, name, ns, jsonpath string) string {
	k.t.Helper()
	args := []string{"get", kind, name, "-o", "jsonpath=" + jsonpath}
	if ns != "" {
		args = append(args, "-n", ns)
	}
	return strings.TrimSpace(k.kubectl(args...))
}

func (k *kube) apply(yaml string) {
	k.t.Helper()
	f := filepath.Join(k.t.TempDir(), "objects.yaml")
	require.NoError(k.t, os.WriteFile(f, []byte(yaml), 0o600))
	k.kubectl("apply", "-f", f)
}

type pod struct {
	name, ip, node     string
	ready, hostNetwork bool
}

func (k *kube) pods(ns, selector string) []pod {
	k.t.Helper()
	return k.listPods("-n", ns, "get", "pods", "-l", selector, "-o", "json")
}

// podsOn lists the pod-network pods (not host network) bound to node.
func (k *kube) podsOn(node string) []pod {
	k.t.Helper()
	var out []pod
	for _, p := range k.listPods("get", "pods", "-A", "--field-selector", "spec.nodeName="+node, "-o", "json") {
		if !p.hostNetwork {
			out = append(out, p)
		}
	}
	return out
}

func (k *kube) listPods(args ...string) []pod {
	k.t.Helper()
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     struct {
				NodeName    string `json:"nodeName"`
				HostNetwork bool   `json:"hostNetwork"`
			} `json:"spec"`
			Status struct {
				PodIP      string                          `json:"podIP"`
				Conditions []struct{ Type, Status string } `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	require.NoError(k.t, json.Unmarshal([]byte(k.kubectl(args...)), &list))
	var out []pod
	for _, it := range list.Items {
		p := pod{name: it.Metadata.Name, ip: it.Status.PodIP, node: it.Spec.NodeName, hostNetwork: it.Spec.HostNetwork}
		for _, c := range it.Status.Conditions {
			p.ready = p.ready || (c.Type == "Ready" && c.Status == "True")
		}
		out = append(out, p)
	}
	return out
}

// connect tries TCP from pod to ip:8080 with agnhost's connect and returns "" on success
// or what failed: "TIMEOUT", "REFUSED", "OTHER: …" (agnhost's own words).
func (k *kube) connect(ns, from, ip string) string {
	k.t.Helper()
	return k.connectTo(ns, from, ip+":8080")
}

// connectTo is connect to any address and port.
func (k *kube) connectTo(ns, from, hostPort string) string {
	k.t.Helper()
	out, err := k.c.Kubectl(k.ctx, "-n", ns, "exec", from, "--", "/agnhost", "connect", "--timeout=3s", hostPort)
	if err == nil {
		return ""
	}
	msg := err.Error() + out
	for _, w := range []string{"TIMEOUT", "REFUSED", "DNS", "OTHER"} {
		if strings.Contains(msg, w) {
			return w
		}
	}
	return msg
}

// tenantYAML is a tenant: its namespace, its VPN and a Deployment of four agnhost
// netexec pods spread over the nodes, with kubelet HTTP readiness and TCP liveness probes.
func tenantYAML(ns, vpn, cidr, image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: sdncni.io/v1alpha1
kind: VirtualPrivateNetwork
metadata: {name: %[2]s}
spec: {cidr: %[3]s, namespaces: [%[1]s]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %[1]s}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: %[4]s
        imagePullPolicy: IfNotPresent
        args: [netexec, --http-port=8080, --udp-port=8081]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}
        livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 5}
`, ns, vpn, cidr, image)
}

// readTarFile returns the content of name inside the tar archive.
func readTarFile(archive, name string) ([]byte, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no %s", archive, name)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", archive, err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			return io.ReadAll(tr)
		}
	}
}

// fastRedirects is node's sdncni_datapath_packets_total{reason="redirect_fast"}: packets
// its eBPF fast path carried pod to pod, from the controller's metrics on the node IP.
func (k *kube) fastRedirects(node string) float64 { return k.datapathCounter(node, "redirect_fast") }

// datapathCounter reads one reason of the node's datapath counters from its metrics.
func (k *kube) datapathCounter(node, reason string) float64 {
	k.t.Helper()
	ip := k.get("node", node, "", `{.status.addresses[?(@.type=="InternalIP")].address}`)
	out, err := k.c.Exec(k.ctx, node, "curl", "-sf", "--max-time", "5", "http://"+ip+":9465/metrics")
	require.NoError(k.t, err)
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, `sdncni_datapath_packets_total{reason="`+reason+`"} `); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(k.t, err)
			return f
		}
	}
	return 0
}
