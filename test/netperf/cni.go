package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
)

// cniRuntime invokes a plugin chain through libcni from inside the node namespace, the
// way a container runtime on that node would.
type cniRuntime struct {
	conf   *libcni.NetworkConfigList
	cninet *libcni.CNIConfig
	nodeNS string
	// args gives the CNI_ARGS of a pod; nil for none.
	args func(podName string) [][2]string
	// caseName names pod namespaces and container IDs.
	caseName string
	added    map[string]*libcni.RuntimeConf // netns name -> attachment
}

func newCNIRuntime(caseName, confJSON, binDir, cacheDir, nodeNS string, args func(string) [][2]string) (*cniRuntime, error) {
	conf, err := libcni.ConfListFromBytes([]byte(confJSON))
	if err != nil {
		return nil, fmt.Errorf("parse conflist: %w", err)
	}
	return &cniRuntime{
		conf:     conf,
		cninet:   libcni.NewCNIConfigWithCacheDir([]string{binDir}, cacheDir, nil),
		nodeNS:   nodeNS,
		args:     args,
		caseName: caseName,
		added:    map[string]*libcni.RuntimeConf{},
	}, nil
}

// inNode runs f on a thread that has entered the node namespace, so plugins libcni
// executes from it start there.
func (r *cniRuntime) inNode(f func() error) error {
	node, err := ns.GetNS(r.nodeNS)
	if err != nil {
		return fmt.Errorf("open node netns: %w", err)
	}
	defer node.Close()
	return node.Do(func(ns.NetNS) error { return f() })
}

// addPod creates the pod's namespace and runs ADD; it returns the pod and how long the
// ADD took. On failure nothing of the pod is left.
func (r *cniRuntime) addPod(ctx context.Context, suffix string, round int) (p pod, took time.Duration, err error) {
	name := podNetNSName(r.caseName, suffix)
	path, err := addNetNS(ctx, name)
	if err != nil {
		return p, 0, err
	}
	rt := &libcni.RuntimeConf{
		ContainerID: fmt.Sprintf("%s-%d", name, round),
		NetNS:       path,
		IfName:      "eth0",
	}
	if r.args != nil {
		rt.Args = r.args("np-" + r.caseName + "-" + suffix)
	}
	r.added[name] = rt
	defer func() {
		if err != nil {
			_, _ = r.delPod(context.WithoutCancel(ctx), name)
		}
	}()
	var res *types100.Result
	err = r.inNode(func() error {
		start := time.Now()
		raw, err := r.cninet.AddNetworkList(ctx, r.conf, rt)
		took = time.Since(start)
		if err != nil {
			return fmt.Errorf("cni add %s: %w", name, err)
		}
		res, err = types100.NewResultFromResult(raw)
		if err != nil {
			return fmt.Errorf("convert result: %w", err)
		}
		return nil
	})
	if err != nil {
		return p, 0, err
	}
	ip, err := firstIPv4(res)
	if err != nil {
		return p, 0, fmt.Errorf("cni add %s: %w", name, err)
	}
	return pod{Name: suffix, NetNS: path, IP: ip, IfName: "eth0"}, took, nil
}

func firstIPv4(res *types100.Result) (net.IP, error) {
	for _, ipc := range res.IPs {
		if ip4 := ipc.Address.IP.To4(); ip4 != nil {
			return ip4, nil
		}
	}
	return nil, errors.New("result has no IPv4 address")
}

// delPod runs DEL for the pod (if it was added) and deletes its namespace; idempotent.
// It returns how long the DEL took.
func (r *cniRuntime) delPod(ctx context.Context, name string) (took time.Duration, err error) {
	var errs []error
	if rt, ok := r.added[name]; ok {
		err := r.inNode(func() error {
			start := time.Now()
			err := r.cninet.DelNetworkList(ctx, r.conf, rt)
			took = time.Since(start)
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("cni del %s: %w", name, err))
		} else {
			delete(r.added, name)
		}
	}
	errs = append(errs, delNetNS(ctx, name))
	return took, errors.Join(errs...)
}

// addPair adds pods "a" and "b".
func (r *cniRuntime) addPair(ctx context.Context, round int) (pair podPair, took []time.Duration, err error) {
	a, ta, err := r.addPod(ctx, "a", round)
	if err != nil {
		return pair, nil, err
	}
	b, tb, err := r.addPod(ctx, "b", round)
	if err != nil {
		_, _ = r.delPod(context.WithoutCancel(ctx), podNetNSName(r.caseName, "a"))
		return pair, nil, err
	}
	return podPair{A: a, B: b}, []time.Duration{ta, tb}, nil
}

// delAll deletes every pod still attached, plus the namespaces of the fixed pod names.
func (r *cniRuntime) delAll(ctx context.Context) error {
	return errors.Join(r.delAttached(ctx), r.delFixedNetNS(ctx))
}

// delAttached runs DEL for every pod still attached and deletes its namespace.
func (r *cniRuntime) delAttached(ctx context.Context) error {
	var errs []error
	for name := range r.added {
		_, err := r.delPod(ctx, name)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// delFixedNetNS deletes the namespaces of the fixed pod names of the case, whoever
// created them.
func (r *cniRuntime) delFixedNetNS(ctx context.Context) error {
	var errs []error
	for _, s := range []string{"a", "b", "loop"} {
		errs = append(errs, delNetNS(ctx, podNetNSName(r.caseName, s)))
	}
	return errors.Join(errs...)
}

// addDel times one ADD and one DEL of an extra pod.
func (r *cniRuntime) addDel(ctx context.Context, i int) (add, del time.Duration, err error) {
	_, add, err = r.addPod(ctx, "loop", 1000+i)
	if err != nil {
		return 0, 0, err
	}
	del, err = r.delPod(ctx, podNetNSName(r.caseName, "loop"))
	if err != nil {
		return 0, 0, err
	}
	return add, del, nil
}
