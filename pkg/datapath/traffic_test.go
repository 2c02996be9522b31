//go:build linux

package datapath

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/stretchr/testify/require"
)

func testLogger(t *testing.T) logr.Logger { return testr.New(t) }

// echoResult is what a UDP request/response run saw.
type echoResult struct {
	replies  int // replies A got
	received int // distinct requests B got
	dups     int // requests B got more than once
}

// udpEcho sends n numbered datagrams from pod A to pod B, one at a time, B echoing
// each. Sockets are created in the pods' netns and then used from any thread.
func udpEcho(t *testing.T, tp *topo, n int) echoResult {
	t.Helper()
	dst := &net.UDPAddr{IP: tp.b.ep.IP.AsSlice(), Port: 7777}
	var srv, cli *net.UDPConn
	require.NoError(t, tp.b.ns.Do(func(ns.NetNS) error {
		var err error
		srv, err = net.ListenUDP("udp4", dst)
		return err
	}))
	defer srv.Close()
	require.NoError(t, tp.a.ns.Do(func(ns.NetNS) error {
		var err error
		cli, err = net.DialUDP("udp4", nil, dst)
		return err
	}))
	defer cli.Close()

	var res echoResult
	seen := map[uint32]int{}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 64)
		for {
			_ = srv.SetReadDeadline(time.Now().Add(3 * time.Second))
			m, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			seq := binary.BigEndian.Uint32(buf[:4])
			seen[seq]++
			if seq == ^uint32(0) {
				return
			}
			_, _ = srv.WriteToUDP(buf[:m], from)
		}
	})
	buf := make([]byte, 64)
	for i := range n {
		msg := binary.BigEndian.AppendUint32(nil, uint32(i))
		_, err := cli.Write(msg)
		require.NoError(t, err)
		_ = cli.SetReadDeadline(time.Now().Add(time.Second))
		if m, err := cli.Read(buf); err == nil && m == 4 && binary.BigEndian.Uint32(buf) == uint32(i) {
			res.replies++
		}
	}
	_, _ = cli.Write(binary.BigEndian.AppendUint32(nil, ^uint32(0)))
	wg.Wait()
	for seq, c := range seen {
		if seq == ^uint32(0) {
			continue
		}
		res.received++
		res.dups += c - 1
	}
	return res
}

// tcpStream streams a counter pattern from pod A to pod B for d, calling during() once
// after a third of it, and returns the bytes B received, verified in order.
func tcpStream(t *testing.T, tp *topo, d time.Duration, during func()) int64 {
	t.Helper()
	addr := &net.TCPAddr{IP: tp.b.ep.IP.AsSlice(), Port: 7778}
	var ln *net.TCPListener
	var cli *net.TCPConn
	require.NoError(t, tp.b.ns.Do(func(ns.NetNS) error {
		var err error
		ln, err = net.ListenTCP("tcp4", addr)
		return err
	}))
	defer ln.Close()
	require.NoError(t, tp.a.ns.Do(func(ns.NetNS) error {
		var err error
		cli, err = net.DialTCP("tcp4", nil, addr)
		return err
	}))
	defer cli.Close()
	_ = ln.SetDeadline(time.Now().Add(5 * time.Second))
	srv, err := ln.AcceptTCP()
	require.NoError(t, err)
	defer srv.Close()

	var (
		wg      sync.WaitGroup
		got     int64
		readErr error
	)
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		var next byte
		for {
			_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := srv.Read(buf)
			for _, c := range buf[:n] {
				if c != next {
					readErr = errors.New("stream corrupted")
					return
				}
				next++
			}
			got += int64(n)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr = err
				}
				return
			}
		}
	})
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	start := time.Now()
	called := false
	for time.Since(start) < d {
		if !called && time.Since(start) > d/3 {
			during()
			called = true
		}
		_ = cli.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := cli.Write(chunk) // 32 KiB keeps the pattern aligned: 32768 % 256 == 0
		require.NoError(t, err, "write: stream broken")
	}
	require.NoError(t, cli.CloseWrite())
	wg.Wait()
	require.NoError(t, readErr)
	return got
}
