// Command benchk8s measures pod start-up on a real cluster with sdncni (make cluster):
// a Deployment of N pods is created at once in a namespace of the default VPN, and each
// pod's time from the Deployment's creation to Ready (seen by a watch, millisecond clock)
// is recorded; then the same with the default VPN's fast path off. It prints p50, p99 and
// max per case (the Kubernetes pod-startup SLO: p99 ≤ 5 s without image pulls).
//
//	go run ./test/benchk8s [--kubeconfig FILE] [--pods 60] [--image REF]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster (default: hack/k8s-cluster.sh kubeconfig)")
	pods := flag.Int("pods", 60, "pods of the Deployment, created at once")
	image := flag.String("image", "", "pod image (default: the agnhost image of _output/images)")
	flag.Parse()
	if err := run(*kubeconfig, *pods, *image); err != nil {
		fmt.Fprintln(os.Stderr, "benchk8s:", err)
		os.Exit(1)
	}
}

func run(kubeconfig string, n int, image string) error {
	if kubeconfig == "" {
		out, err := exec.Command("hack/k8s-cluster.sh", "kubeconfig").Output()
		if err != nil {
			return fmt.Errorf("no --kubeconfig and no cluster (make cluster): %w", err)
		}
		kubeconfig = strings.TrimSpace(string(out))
	}
	if image == "" {
		var err error
		if image, err = agnhost(); err != nil {
			return err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("pod start-up: %d pods of one Deployment created at once on %d nodes (%s)\n\n", n, len(nodes.Items), image)
	fmt.Printf("%-16s %8s %8s %8s %8s\n", "case", "p50", "p99", "max", "pods")
	// Host-network pods need no CNI: what kubelet, containerd and the machine cost alone.
	cases := []struct {
		name        string
		fast, hostN bool
	}{{"fast path on", true, false}, {"fast path off", false, false}, {"host network", true, true}}
	for _, c := range cases {
		if err := setFastPath(ctx, dyn, c.fast); err != nil {
			return err
		}
		d, err := measure(ctx, cs, n, image, c.hostN)
		if err != nil {
			return err
		}
		fmt.Printf("%-16s %8s %8s %8s %8d\n", c.name, pct(d, 50), pct(d, 99), pct(d, 100), len(d))
	}
	return setFastPath(ctx, dyn, true)
}

// measure creates a Deployment of n pods (on the host network if hostNetwork) in a fresh
// namespace and returns each pod's time from creation to Ready; the namespace is deleted
// afterwards.
func measure(ctx context.Context, cs *kubernetes.Clientset, n int, image string, hostNetwork bool) ([]time.Duration, error) {
	ns := fmt.Sprintf("benchk8s-%d", time.Now().UnixNano()%100000)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		_ = cs.CoreV1().Namespaces().Delete(dctx, ns, metav1.DeleteOptions{})
		for dctx.Err() == nil {
			if _, err := cs.CoreV1().Namespaces().Get(dctx, ns, metav1.GetOptions{}); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
	}()
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	replicas := int32(n)
	labels := map[string]string{"app": "bench"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					HostNetwork:                   hostNetwork,
					TerminationGracePeriodSeconds: new(int64),
					Containers: []corev1.Container{{Name: "pause", Image: image, Args: []string{"pause"},
						ImagePullPolicy: corev1.PullIfNotPresent}},
				},
			},
		},
	}
	start := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	ready := map[types.UID]time.Duration{}
	deadline := time.After(5 * time.Minute)
	for len(ready) < n {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, fmt.Errorf("watch closed after %d of %d pods", len(ready), n)
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			if _, seen := ready[p.UID]; seen {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready[p.UID] = time.Since(start)
				}
			}
		case <-deadline:
			return nil, fmt.Errorf("%d of %d pods Ready after 5 min", len(ready), n)
		}
	}
	out := make([]time.Duration, 0, n)
	for _, d := range ready {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// setFastPath switches the default VPN's spec.fastPath.
func setFastPath(ctx context.Context, dyn dynamic.Interface, on bool) error {
	gvr := schema.GroupVersionResource{Group: "sdncni.io", Version: "v1alpha1", Resource: "virtualprivatenetworks"}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"fastPath": on}})
	_, err := dyn.Resource(gvr).Patch(ctx, "default", types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("set fastPath=%t on the default VPN: %w", on, err)
	}
	time.Sleep(2 * time.Second) // the nodes follow the change
	return nil
}

func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "-"
	}
	i := (len(d)*p + 99) / 100
	i = min(max(i-1, 0), len(d)-1)
	return d[i].Round(10 * time.Millisecond).String()
}

// agnhost is the reference of the agnhost image archive make images writes.
func agnhost() (string, error) {
	out, err := exec.Command("tar", "-xOf", "_output/images/agnhost.tar", "index.json").Output()
	if err != nil {
		return "", fmt.Errorf("no _output/images/agnhost.tar (make images): %w", err)
	}
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(out, &idx); err != nil || len(idx.Manifests) == 0 {
		return "", fmt.Errorf("agnhost.tar: no image in index.json")
	}
	return idx.Manifests[0].Annotations["io.containerd.image.name"], nil
}
