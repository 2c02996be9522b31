package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sdncni/sdncni/pkg/attach"
)

// The tests of this file drive real traffic between pods and judge which path it took
// from independent readers: the pods' own link counters, OVS's port counters (over
// OpenFlow) and the datapath's counters as the controller exports them on /metrics.

const (
	bulkBytes    = 32 << 20 // bulk TCP per run
	udpDatagrams = 200
	// ovsSlack is how many packets OVS ports may see while the fast path carries the
	// traffic: ARP re-validation and the pods' own IPv6 chatter (router solicitations,
	// MLD reports, DAD) in their first seconds.
	ovsSlack = 24
)

// trafficSnapshot holds every counter the path checks compare.
type trafficSnapshot struct {
	dp       map[string]int64
	ovsA     portCounters
	ovsB     portCounters
	podA     portCounters
	podB     portCounters
	taken    time.Time
	hasStats bool
}

func snapshot(t *testing.T, n *node, a, b *pod) trafficSnapshot {
	t.Helper()
	return trafficSnapshot{dp: n.datapathCounters(t), ovsA: n.ovsPortCounters(t, a), ovsB: n.ovsPortCounters(t, b),
		podA: podLinkCounters(t, a), podB: podLinkCounters(t, b), taken: time.Now(), hasStats: true}
}

// trafficDelta is what moved between two snapshots.
type trafficDelta struct {
	redirectFast int64
	dp           map[string]int64
	ovs          int64 // rx+tx of both pods' OVS ports
	ovsRx        int64 // what OVS received from both pods
	podsTx       int64 // packets both pods sent
	podA, podB   portCounters
}

func delta(before, after trafficSnapshot) trafficDelta {
	d := trafficDelta{dp: map[string]int64{}}
	for k, v := range after.dp {
		if dv := v - before.dp[k]; dv != 0 {
			d.dp[k] = dv
		}
	}
	d.redirectFast = d.dp["redirect_fast"]
	oa, ob := after.ovsA.sub(before.ovsA), after.ovsB.sub(before.ovsB)
	d.ovs, d.ovsRx = oa.sum()+ob.sum(), oa.rx+ob.rx
	d.podA, d.podB = after.podA.sub(before.podA), after.podB.sub(before.podB)
	d.podsTx = d.podA.tx + d.podB.tx
	return d
}

func (d trafficDelta) String() string {
	return fmt.Sprintf("pods sent %d packets (A tx %d rx %d, B tx %d rx %d); OVS ports of both pods moved %d (rx %d); datapath %v",
		d.podsTx, d.podA.tx, d.podA.rx, d.podB.tx, d.podB.rx, d.ovs, d.ovsRx, d.dp)
}

// moveTraffic runs the standard traffic mix from a to b and checks that it arrived
// intact and once: a fast ping burst without duplicates, bulk TCP, and UDP datagrams
// each received exactly once.
func moveTraffic(t *testing.T, a, b *pod, ipB netip.Addr, bulk int) {
	t.Helper()
	pingBurst(t, a, ipB, 50)
	bulkTCP(t, a, b, ipB, bulk)
	udpExactlyOnce(t, a, b, ipB, udpDatagrams)
}

// pingBurst sends count echo requests quickly and requires every reply, each once.
func pingBurst(t *testing.T, p *pod, dst netip.Addr, count int) {
	t.Helper()
	out, err := inPod(p, "ping", "-q", "-c", fmt.Sprint(count), "-i", "0.01", "-W", "2", dst.String())
	require.NoError(t, err, "ping %s from %s:\n%s", dst, p.name, out)
	require.Contains(t, string(out), fmt.Sprintf("%d packets transmitted, %d received,", count, count), string(out))
	require.NotContains(t, string(out), "duplicates", "duplicated replies:\n%s", out)
}

// listenIn opens a listener inside p's netns.
func listenIn(t *testing.T, p *pod, network, addr string) (l net.Listener, pc net.PacketConn) {
	t.Helper()
	pns, err := ns.GetNS(p.netns)
	require.NoError(t, err)
	defer pns.Close()
	require.NoError(t, pns.Do(func(ns.NetNS) error {
		var err error
		if strings.HasPrefix(network, "udp") {
			pc, err = net.ListenPacket(network, addr)
		} else {
			l, err = net.Listen(network, addr)
		}
		return err
	}))
	return l, pc
}

// dialFrom dials from inside p's netns.
func dialFrom(p *pod, network, addr string, timeout time.Duration) (net.Conn, error) {
	return dialIn(p.netns, network, addr, timeout)
}

// bulkTCP sends size bytes from a to b over one TCP connection; b counts them.
func bulkTCP(t *testing.T, a, b *pod, ipB netip.Addr, size int) {
	t.Helper()
	tcpTransfer(t, a, b, ipB, 7780, size, 30*time.Second)
}

// udpExactlyOnce sends count numbered datagrams from a to b and requires b to receive
// each number exactly once.
func udpExactlyOnce(t *testing.T, a, b *pod, ipB netip.Addr, count int) {
	t.Helper()
	_, pc := listenIn(t, b, "udp4", ":7781")
	defer pc.Close()
	seen := make([]int, count)
	var bad []string
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		idle := 3 * time.Second // until the first datagram
		for {
			// The sender paces its datagrams 1 ms apart: 500 ms of silence means it is
			// over, and a duplicate would have come by then.
			_ = pc.SetReadDeadline(time.Now().Add(idle))
			idle = 500 * time.Millisecond
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			seq := int(binary.BigEndian.Uint32(buf[:4]))
			if n != 512 || seq >= count {
				bad = append(bad, fmt.Sprintf("datagram of %d bytes, seq %d", n, seq))
				continue
			}
			seen[seq]++
		}
	})
	c, err := dialFrom(a, "udp4", netip.AddrPortFrom(ipB, 7781).String(), 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	msg := make([]byte, 512)
	for i := range count {
		binary.BigEndian.PutUint32(msg, uint32(i))
		_, err := c.Write(msg)
		require.NoError(t, err)
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	require.Empty(t, bad)
	var wrong []string
	for i, k := range seen {
		if k != 1 {
			wrong = append(wrong, fmt.Sprintf("seq %d seen %d times", i, k))
		}
	}
	require.Empty(t, wrong, "each datagram must arrive exactly once")
}

// TestFastPathTraffic: the same traffic between two pods of the default network, with
// the fast path on and off. On: the datapath redirects it pod to pod, OVS's ports of the
// two pods stay flat (ARP aside) and every packet arrives once. Off: it all crosses OVS
// and the datapath redirects nothing.
func TestFastPathTraffic(t *testing.T) {
	for _, tc := range []struct {
		name string
		fast bool
	}{{"on", true}, {"off", false}} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, withMetrics(), withControllerArgs(fmt.Sprintf("--fast-path=%t", tc.fast)))
			const v = "1.1.0"
			a, b := newPod(t, "fp-a"), newPod(t, "fp-b")
			n.mustAdd(t, v, a)
			ipB := n.mustAdd(t, v, b)
			t.Cleanup(func() { _ = n.del(t, v, a); _ = n.del(t, v, b) })
			ping(t, a, ipB) // resolves ARP both ways before the counted traffic

			before := snapshot(t, n, a, b)
			moveTraffic(t, a, b, ipB, bulkBytes)
			d := delta(before, snapshot(t, n, a, b))
			t.Logf("fast path %s: %s", tc.name, d)
			require.Greater(t, d.podsTx, int64(udpDatagrams+100), "traffic must have moved")
			if tc.fast {
				assertFastPath(t, d)
			} else {
				assertSlowPath(t, d)
			}
			require.NoError(t, n.check(t, v, a))
			require.NoError(t, n.check(t, v, b))
		})
	}
}

// assertFastPath: every IPv4 packet the pods sent was redirected pod to pod; only what
// is not IPv4 (ARP, the pods' own IPv6 chatter) went to OVS, so OVS's ports moved a
// handful of packets at most; each pod received exactly what the other sent.
func assertFastPath(t *testing.T, d trafficDelta) {
	t.Helper()
	other := map[string]int64{}
	for reason, v := range d.dp {
		if reason != "redirect_fast" && reason != "to_ovs_not_ipv4" && reason != "from_ovs" {
			other[reason] = v
		}
	}
	require.Empty(t, other, "no IPv4 packet may go to OVS or be dropped: %s", d)
	// The snapshots read the counters one after the other, so the pods' IPv6 chatter may
	// fall into one reading and not another: allow the slack.
	require.GreaterOrEqual(t, d.redirectFast, d.podsTx-ovsSlack, "redirect_fast must count the packets moved: %s", d)
	require.LessOrEqual(t, d.ovs, max(ovsSlack, d.podsTx/100), "OVS ports must stay flat on the fast path: %s", d)
	require.InDelta(t, d.podA.tx, d.podB.rx, ovsSlack, "B must receive what A sent, once: %s", d)
	require.InDelta(t, d.podB.tx, d.podA.rx, ovsSlack, "A must receive what B sent, once: %s", d)
}

// assertSlowPath: OVS received every packet the pods sent (2% allowance for a packet a
// full tap queue dropped and TCP resent); nothing was redirected pod to pod.
func assertSlowPath(t *testing.T, d trafficDelta) {
	t.Helper()
	require.GreaterOrEqual(t, d.ovsRx, d.podsTx*98/100, "OVS must carry every packet: %s", d)
	require.Zero(t, d.redirectFast, "nothing may take the fast path: %s", d)
}

// bannerPort is where serveBanner answers with the pod's name.
const bannerPort = 7001

// serveBanner makes p answer every TCP connection on bannerPort with its name, so a
// client knows which pod it reached when several pods share an address.
func serveBanner(t *testing.T, p *pod) {
	t.Helper()
	l, _ := listenIn(t, p, "tcp4", fmt.Sprintf(":%d", bannerPort))
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, p.name)
			_ = c.Close()
		}
	}()
}

// banner connects from p to dst's banner and returns the name it reads.
func banner(p *pod, dst netip.Addr, timeout time.Duration) (string, error) {
	c, err := dialFrom(p, "tcp4", netip.AddrPortFrom(dst, bannerPort).String(), timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// requireReaches: p reaches the pod want at dst over ICMP (replies once) and TCP, and
// it is that pod that answers.
func requireReaches(t *testing.T, p *pod, dst netip.Addr, want *pod) {
	t.Helper()
	ping(t, p, dst)
	got, err := banner(p, dst, 5*time.Second)
	require.NoError(t, err, "%s → %s (%s)", p.name, dst, want.name)
	require.Equal(t, want.name, got, "%s → %s reached the wrong pod", p.name, dst)
}

// cannotReach reports why p could reach dst, or "" when it could not: a TCP connect to
// the banner must time out (a refusal would mean a host answered) or fail for lack of a
// route/neighbour, and pings must get no reply.
func cannotReach(p *pod, dst netip.Addr) string {
	var problems []string
	var wg sync.WaitGroup
	var mu sync.Mutex
	add := func(s string) { mu.Lock(); problems = append(problems, s); mu.Unlock() }
	wg.Go(func() {
		name, err := banner(p, dst, 1500*time.Millisecond)
		var ne net.Error
		switch {
		case err == nil:
			add(fmt.Sprintf("TCP connected and %q answered", name))
		case errors.As(err, &ne) && ne.Timeout():
		case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		default:
			add(fmt.Sprintf("TCP connect did not time out: %v", err))
		}
	})
	wg.Go(func() {
		out, err := inPod(p, "ping", "-c", "2", "-i", "0.5", "-W", "1", dst.String())
		if err == nil || strings.Contains(string(out), "bytes from") {
			add(fmt.Sprintf("ping got a reply:\n%s", out))
		}
	})
	wg.Wait()
	if len(problems) == 0 {
		return ""
	}
	return fmt.Sprintf("%s → %s: %s", p.name, dst, strings.Join(problems, "; "))
}

// TestIsolationBothPaths: three networks on one node, two of them with the same CIDR.
// Pods of a network reach each other (and, at an address that also exists in the
// overlapping network, the pod of their own network); no pod reaches a pod of another
// network, with the fast path on and then off (controller restarted with the flag).
func TestIsolationBothPaths(t *testing.T) {
	nets := writeNetworksFile(t,
		testNetwork{Name: "tenant-b", ID: 2, CIDR: "10.77.0.0/24", MTU: 1400, FastPath: true, Namespaces: []string{"ns-b"}},
		testNetwork{Name: "tenant-c", ID: 3, CIDR: "10.88.0.0/24", MTU: 1400, FastPath: true, Namespaces: []string{"ns-c"}})
	args := []string{"--metrics-addr", metricsAddr, "--networks-file", nets}
	n := newNode(t, withControllerArgs(args...))
	const v = "1.1.0"

	ips := map[*pod]netip.Addr{}
	add := func(name, k8sNS string) *pod {
		p := newPodIn(t, name, k8sNS)
		ips[p] = n.mustAdd(t, v, p)
		t.Cleanup(func() { _ = n.del(t, v, p) })
		return p
	}
	// Default network: x1, x2, a hole, x3; tenant-b (same CIDR): y1, y2, y3. So x1/y1
	// and x2/y2 share addresses, and x3 and y3 each have one the other network lacks.
	x1, x2 := add("x1", "default"), add("x2", "default")
	gap := add("gap", "default")
	x3 := add("x3", "default")
	require.NoError(t, n.del(t, v, gap))
	delete(ips, gap)
	y1, y2, y3 := add("y1", "ns-b"), add("y2", "ns-b"), add("y3", "ns-b")
	z1, z2 := add("z1", "ns-c"), add("z2", "ns-c")
	require.Equal(t, ips[x1], ips[y1], "overlapping networks should hand out the same first address")
	require.Equal(t, ips[x2], ips[y2])
	require.True(t, netip.MustParsePrefix("10.88.0.0/24").Contains(ips[z1]))
	byNet := [][]*pod{{x1, x2, x3}, {y1, y2, y3}, {z1, z2}}
	has := func(net []*pod, a netip.Addr) bool {
		for _, p := range net {
			if ips[p] == a {
				return true
			}
		}
		return false
	}
	for _, net := range byNet {
		for _, p := range net {
			serveBanner(t, p)
		}
	}

	for _, mode := range []struct {
		name string
		fast bool
	}{{"fast path on", true}, {"fast path off", false}} {
		if !mode.fast {
			n.restartController(append(args, "--fast-path=false")...)
		}
		before := n.datapathCounters(t)
		// Within a network: everyone reaches everyone, at the right pod.
		for _, net := range byNet {
			for _, p := range net {
				for _, q := range net {
					if p != q {
						requireReaches(t, p, ips[q], q)
					}
				}
			}
		}
		// Across networks: every address of another network that the source's own
		// network does not have is unreachable.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var leaks []string
		pairs := 0
		for i, src := range byNet {
			for j, dstNet := range byNet {
				if i == j {
					continue
				}
				for _, dst := range dstNet {
					if has(src, ips[dst]) {
						continue // that address is a pod of src's own network
					}
					pairs++
					wg.Go(func() {
						if why := cannotReach(src[0], ips[dst]); why != "" {
							mu.Lock()
							leaks = append(leaks, why+" (a pod of another network)")
							mu.Unlock()
						}
					})
				}
			}
		}
		wg.Wait()
		require.Empty(t, leaks, mode.name)
		require.GreaterOrEqual(t, pairs, 8)
		after := n.datapathCounters(t)
		fast := after["redirect_fast"] - before["redirect_fast"]
		t.Logf("%s: %d cross-network pairs isolated; redirect_fast +%d, cross_vpn_or_unknown_dst +%d, fastpath_off +%d",
			mode.name, pairs, fast, after["to_ovs_cross_vpn_or_unknown_dst"]-before["to_ovs_cross_vpn_or_unknown_dst"],
			after["to_ovs_fastpath_off"]-before["to_ovs_fastpath_off"])
		if mode.fast {
			require.Positive(t, fast, "same-network traffic should have taken the fast path")
		} else {
			require.Zero(t, fast, "nothing may take the fast path when it is off")
		}
	}
}

// TestStreamSurvivesControllerKill: a TCP stream runs for 8 s while the controller is
// SIGKILLed and restarted; the receiver sees every byte in order, no reset, no pause
// over a second, and the stream is still on the fast path after the restart.
func TestStreamSurvivesControllerKill(t *testing.T) {
	n := newNode(t, withMetrics())
	const v = "1.1.0"
	a, b := newPod(t, "stream-a"), newPod(t, "stream-b")
	n.mustAdd(t, v, a)
	ipB := n.mustAdd(t, v, b)
	t.Cleanup(func() { _ = n.del(t, v, a); _ = n.del(t, v, b) })
	ping(t, a, ipB)

	const (
		duration = 8 * time.Second
		chunk    = 128 // uint64 sequence numbers per write
		pace     = 2 * time.Millisecond
	)
	l, _ := listenIn(t, b, "tcp4", ":7790")
	defer l.Close()
	type result struct {
		numbers uint64
		maxGap  time.Duration
		retrans uint32 // the sender's retransmitted segments
		err     error
	}
	got := make(chan result, 1)
	go func() {
		var r result
		defer func() { got <- r }()
		c, err := l.Accept()
		if err != nil {
			r.err = err
			return
		}
		defer c.Close()
		buf := make([]byte, 8*chunk)
		last := time.Now()
		for {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, err := io.ReadFull(c, buf[:8])
			if errors.Is(err, io.EOF) && k == 0 {
				return
			}
			if err != nil {
				r.err = fmt.Errorf("after %d numbers: %w", r.numbers, err)
				return
			}
			if gap := time.Since(last); gap > r.maxGap {
				r.maxGap = gap
			}
			last = time.Now()
			if x := binary.BigEndian.Uint64(buf[:8]); x != r.numbers {
				r.err = fmt.Errorf("expected number %d, got %d", r.numbers, x)
				return
			}
			r.numbers++
		}
	}()
	c, err := dialFrom(a, "tcp4", netip.AddrPortFrom(ipB, 7790).String(), 5*time.Second)
	require.NoError(t, err)
	sent := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			r.retrans, _ = totalRetrans(c)
			c.Close()
			sent <- r
		}()
		buf := make([]byte, 8*chunk)
		end := time.Now().Add(duration)
		for time.Now().Before(end) {
			for i := range chunk {
				binary.BigEndian.PutUint64(buf[8*i:], r.numbers+uint64(i))
			}
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(buf); err != nil {
				r.err = err
				return
			}
			r.numbers += chunk
			time.Sleep(pace)
		}
	}()

	time.Sleep(2 * time.Second)
	beforeKill := n.datapathCounters(t)
	n.killController()
	killed := time.Now()
	n.startController()
	t.Logf("controller back after %v", time.Since(killed).Round(time.Millisecond))
	afterRestart := n.datapathCounters(t)
	s, r := <-sent, <-got
	end := n.datapathCounters(t)
	fast := end["redirect_fast"] - afterRestart["redirect_fast"]
	t.Logf("stream: %d numbers sent, %d received (%d KiB), longest pause %v, %d retransmitted segments, redirect_fast +%d after the restart",
		s.numbers, r.numbers, r.numbers*8>>10, r.maxGap.Round(time.Millisecond), s.retrans, fast)
	require.NoError(t, s.err, "sender")
	require.NoError(t, r.err, "receiver")
	require.Equal(t, s.numbers, r.numbers, "the receiver must get every number sent")
	require.Less(t, r.maxGap, time.Second, "longest pause in the stream")
	require.Positive(t, fast, "the stream should still take the fast path after the restart")
	require.Zero(t, s.retrans, "no segment may be lost across the restart")
	for reason, v := range end {
		if strings.HasPrefix(reason, "drop_") {
			require.Equal(t, beforeKill[reason], v, "datapath drops (%s) across the restart", reason)
		}
	}
	require.NoError(t, n.check(t, v, a))
	require.NoError(t, n.check(t, v, b))
}

// TestPerNetworkFastPathSwitch: a network configured with "fastPath": false carries its
// pods' traffic through OVS while the default network keeps the fast path.
func TestPerNetworkFastPathSwitch(t *testing.T) {
	nets := writeNetworksFile(t,
		testNetwork{Name: "slow", ID: 2, CIDR: "10.78.0.0/24", MTU: 1400, FastPath: false, Namespaces: []string{"ns-slow"}})
	n := newNode(t, withMetrics(), withControllerArgs("--networks-file", nets))
	const v = "1.1.0"
	for _, tc := range []struct {
		k8sNS string
		fast  bool
	}{{"default", true}, {"ns-slow", false}} {
		a, b := newPodIn(t, "sw-a-"+tc.k8sNS, tc.k8sNS), newPodIn(t, "sw-b-"+tc.k8sNS, tc.k8sNS)
		n.mustAdd(t, v, a)
		ipB := n.mustAdd(t, v, b)
		t.Cleanup(func() { _ = n.del(t, v, a); _ = n.del(t, v, b) })
		ping(t, a, ipB)
		before := snapshot(t, n, a, b)
		moveTraffic(t, a, b, ipB, 8<<20)
		d := delta(before, snapshot(t, n, a, b))
		t.Logf("namespace %s: %s", tc.k8sNS, d)
		if tc.fast {
			assertFastPath(t, d)
		} else {
			assertSlowPath(t, d)
			require.GreaterOrEqual(t, d.dp["to_ovs_fastpath_off"], d.podsTx-ovsSlack, "%s", d)
		}
	}
}

// bpfObject is one entry of bpftool -j prog/map/link show.
type bpfObject struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	MapIDs []int  `json:"map_ids"`
	ProgID int    `json:"prog_id"`
}

func bpftoolShow(t *testing.T, kind string) []bpfObject {
	t.Helper()
	out, err := exec.Command("bpftool", "-j", kind, "show").Output()
	require.NoError(t, err, "bpftool %s show", kind)
	var objs []bpfObject
	require.NoError(t, json.Unmarshal(out, &objs), string(out))
	return objs
}

// ourBPF are the kernel objects of one node's datapath, by ID. Other tests on the machine
// may run datapaths of their own with the same program and map names, so objects are
// recognised by identity: the maps pinned under the node's pin dir, the programs that use
// them and the links that hold those programs.
type ourBPF struct{ maps, progs, links map[int]bool }

func collectOurBPF(t *testing.T, pinDir string) ourBPF {
	t.Helper()
	o := ourBPF{maps: map[int]bool{}, progs: map[int]bool{}, links: map[int]bool{}}
	entries, err := os.ReadDir(filepath.Join(pinDir, "maps"))
	require.NoError(t, err)
	for _, e := range entries {
		out, err := exec.Command("bpftool", "-j", "map", "show", "pinned", filepath.Join(pinDir, "maps", e.Name())).Output()
		require.NoError(t, err, "bpftool map show pinned %s", e.Name())
		var m bpfObject
		require.NoError(t, json.Unmarshal(out, &m), string(out))
		o.maps[m.ID] = true
	}
	o.addUsers(t)
	return o
}

// addUsers adds the programs using our maps and the links holding our programs.
func (o ourBPF) addUsers(t *testing.T) {
	t.Helper()
	for _, p := range bpftoolShow(t, "prog") {
		for _, m := range p.MapIDs {
			if o.maps[m] {
				o.progs[p.ID] = true
			}
		}
	}
	for _, l := range bpftoolShow(t, "link") {
		if o.progs[l.ProgID] {
			o.links[l.ID] = true
		}
	}
}

// remaining lists which of o still exist in the kernel, and any program using our maps.
func (o ourBPF) remaining(t *testing.T) []string {
	t.Helper()
	var left []string
	for _, m := range bpftoolShow(t, "map") {
		if o.maps[m.ID] {
			left = append(left, fmt.Sprintf("map %d %s", m.ID, m.Name))
		}
	}
	for _, p := range bpftoolShow(t, "prog") {
		uses := false
		for _, m := range p.MapIDs {
			uses = uses || o.maps[m]
		}
		if o.progs[p.ID] || uses {
			left = append(left, fmt.Sprintf("prog %d %s", p.ID, p.Name))
		}
	}
	for _, l := range bpftoolShow(t, "link") {
		if o.links[l.ID] || o.progs[l.ProgID] {
			left = append(left, fmt.Sprintf("link %d (prog %d)", l.ID, l.ProgID))
		}
	}
	return left
}

// hooksOn lists the BPF programs on an interface of the node netns as the kernel reports
// them (TCX ingress/egress) and the tc filters of its clsact hooks.
func (n *node) hooksOn(t *testing.T, ifname string) []string {
	t.Helper()
	nodeNS, err := ns.GetNS(n.ovn.NetNSPath)
	require.NoError(t, err)
	defer nodeNS.Close()
	var hooks []string
	require.NoError(t, nodeNS.Do(func(ns.NetNS) error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: at})
			if err != nil {
				return fmt.Errorf("query %s %s: %w", ifname, at, err)
			}
			for _, p := range res.Programs {
				hooks = append(hooks, fmt.Sprintf("%s %s prog %d", ifname, at, p.ID))
			}
		}
		return nil
	}))
	for _, dir := range []string{"ingress", "egress"} {
		out, err := exec.Command("ip", "netns", "exec", n.ovn.NetNS, "tc", "filter", "show", "dev", ifname, dir).CombinedOutput()
		require.NoError(t, err, string(out))
		if s := strings.TrimSpace(string(out)); s != "" {
			hooks = append(hooks, fmt.Sprintf("%s tc %s: %s", ifname, dir, s))
		}
	}
	return hooks
}

// bpftoolNetOurs lists what bpftool net show, run in the node netns, reports of ours.
func (n *node) bpftoolNetOurs(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+n.ovn.NetNSPath, "bpftool", "-j", "net", "show").Output()
	require.NoError(t, err)
	var res []map[string][]struct {
		DevName string `json:"devname"`
		Name    string `json:"name"`
		Kind    string `json:"kind"`
		ID      int    `json:"id"`
	}
	require.NoError(t, json.Unmarshal(out, &res), string(out))
	var ours []string
	for _, section := range res {
		for hook, entries := range section {
			for _, e := range entries {
				if strings.HasPrefix(e.Name, "sdncni") || attach.IsOurLink(e.DevName) {
					ours = append(ours, fmt.Sprintf("%s %s on %s (%s)", hook, e.Name, e.DevName, e.Kind))
				}
			}
		}
	}
	return ours
}

// TestTeardown: sdncni-controller --teardown, run in the node netns after the controller
// stopped, leaves no program, map, link, pin or hook of the node's datapath. Once after
// every pod was deleted (the documented order) and once with a pod still attached (its
// hooks must go too); that pod can then be deleted by a fresh controller.
func TestTeardown(t *testing.T) {
	for _, tc := range []struct {
		name     string
		keepPodA bool
	}{{"pods deleted", false}, {"pod still attached", true}} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			const v = "1.1.0"
			a, b := newPod(t, "td-a"), newPod(t, "td-b")
			n.mustAdd(t, v, a)
			ipB := n.mustAdd(t, v, b)
			ping(t, a, ipB)
			ours := collectOurBPF(t, n.pinDir)
			// sdncni_cfg, _cnt, _ep, _dst, _svc, _vpn_off, NetworkPolicy's _pol, _ct and
			// _pol_ovs (the hand-offs per VPN), and the cross-node path's _remote, _xnode,
			// _xpeer and _xback.
			require.Len(t, ours.maps, 13, "maps pinned under %s", n.pinDir)
			require.GreaterOrEqual(t, len(ours.progs), 2, "programs using our maps")
			hooks := append(n.hooksOn(t, hostIf(a)), n.hooksOn(t, ovsIf(a))...)
			require.Len(t, hooks, 2, "one program on each of the pod's interfaces: %v", hooks)
			t.Logf("before teardown: maps %v, programs %v, links %v, hooks of pod a %v", keys(ours.maps), keys(ours.progs), keys(ours.links), hooks)

			require.NoError(t, n.del(t, v, b))
			if !tc.keepPodA {
				require.NoError(t, n.del(t, v, a))
				require.Empty(t, n.leftovers(t))
			}
			n.stopController()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "nsenter", "--net="+n.ovn.NetNSPath, filepath.Join(n.bin, "sdncni-controller"),
				"--teardown", "--bpf-pin-dir", n.pinDir).CombinedOutput()
			require.NoError(t, err, string(out))

			_, err = os.Stat(n.pinDir)
			require.True(t, os.IsNotExist(err), "pin dir %s still there (%v)", n.pinDir, err)
			// The kernel frees programs and maps asynchronously once the last reference goes.
			var left []string
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if left = ours.remaining(t); len(left) == 0 || time.Now().After(deadline) {
					break
				}
			}
			require.Empty(t, left, "kernel objects of the torn-down datapath")
			require.Empty(t, n.bpftoolNetOurs(t), "bpftool net show in the node netns")
			if tc.keepPodA {
				require.Empty(t, n.hooksOn(t, hostIf(a)))
				require.Empty(t, n.hooksOn(t, ovsIf(a)))
				// A fresh controller deletes the pod the teardown left without a datapath.
				n.startController()
				require.NoError(t, n.del(t, v, a))
				require.Empty(t, n.leftovers(t))
			}
		})
	}
}

func keys(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// totalRetrans reads the connection's count of retransmitted segments (TCP_INFO).
func totalRetrans(c net.Conn) (uint32, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, fmt.Errorf("not a TCP connection")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return 0, err
	}
	if ierr != nil {
		return 0, ierr
	}
	return info.Total_retrans, nil
}
