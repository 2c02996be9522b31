package testenv

import (
	"fmt"
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
	stop, err := Forward(netnsPath, addr)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(stop)
}

// Forward is ForwardIntoNetNS for programs without a testing.TB (the demo): it listens
// on addr inside the network namespace at netnsPath and relays each connection to addr
// in the caller's network namespace. stop closes the listener and every relayed
// connection and waits for the relays to end; calling it twice is harmless.
func Forward(netnsPath, addr string) (stop func(), err error) {
	target, err := ns.GetNS(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", netnsPath, err)
	}
	defer target.Close()
	var l net.Listener
	if err := target.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, netnsPath, err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		open = map[net.Conn]bool{}
		once sync.Once
	)
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
	return func() {
		once.Do(func() {
			l.Close()
			mu.Lock()
			for c := range open {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}, nil
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
