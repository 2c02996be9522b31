package testenv

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// ForwardIntoNetNS makes a TCP service of the root network namespace's loopback (addr,
// "127.0.0.1:port") reachable at the same address inside the network namespace at
// netnsPath: a node's processes (which live in the node netns) can then use the same
// kubeconfig as the test. The listener lives in the netns; connections are relayed to
// addr from the test process. It stops when t ends.
func ForwardIntoNetNS(t testing.TB, netnsPath, addr string) {
	t.Helper()
	target, err := ns.GetNS(netnsPath)
	if err != nil {
		t.Fatalf("open netns %s: %v", netnsPath, err)
	}
	defer target.Close()
	var l net.Listener
	if err := target.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, netnsPath, err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		open = map[net.Conn]bool{}
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[in] = true
			mu.Unlock()
			wg.Go(func() {
				relay(in, addr)
				mu.Lock()
				delete(open, in)
				mu.Unlock()
			})
		}
	})
}

func relay(in net.Conn, addr string) {
	defer in.Close()
	out, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}
