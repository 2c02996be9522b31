package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/sdncni/sdncni/pkg/attach"
)

// Pods: network namespaces attached through libcni, as a container runtime does.

// podSpec places a pod. tenant-a gets a second pod on node1 so that same-node traffic
// inside a VPN (the eBPF fast path) can be shown. Creation order picks the address
// blocks, and a node never holds two overlapping blocks (docs/gateway.md): a1 takes
// vpn-a's 10.100.0.0/28 on node1 and b2 vpn-b's 10.100.0.0/27 on node2, so a1 and b2 are
// both 10.100.0.3; a2 then gets vpn-a's 10.100.0.32/28 on node2 and b1 vpn-b's
// 10.100.0.32/27 on node1, both 10.100.0.33. Each tenant thus has addresses that also
// exist in the other tenant's VPN (4b).
var podSpecs = []struct {
	name, namespace string
	node            int
}{
	{"a1", "tenant-a", 0},
	{"b2", "tenant-b", 1},
	{"a3", "tenant-a", 0},
	{"a2", "tenant-a", 1},
	{"b1", "tenant-b", 0},
	{"dns1", "kube-system", 1}, // the cluster DNS's pod, in the default VPN (4c)
}

const bannerPort = 7001

type pod struct {
	name, namespace, vpn string
	node                 *node
	netns, containerID   string
	ip                   netip.Addr
	prefix               netip.Prefix
	mac                  string
	stopBanner           func()
}

func (p *pod) netnsPath() string { return "/run/netns/" + p.netns }
func (p *pod) names() attach.Names {
	return attach.NamesFor(attach.Key{ContainerID: p.containerID, IfName: "eth0"})
}
func (p *pod) String() string { return p.name }

// writeConfLists writes each node's network configuration where a runtime reads it.
func (d *demo) writeConfLists() error {
	for _, n := range d.nodes {
		dir := filepath.Join(n.dir, "net.d")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		conf := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "sdncni",
 "plugins": [{"type": "sdncni", "socket": %q, "logFile": %q}]}
`, n.socket, filepath.Join(n.dir, "cni.log"))
		if err := os.WriteFile(filepath.Join(dir, "10-sdncni.conflist"), []byte(conf), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (n *node) netConf() (*libcni.NetworkConfigList, error) {
	return libcni.LoadNetworkConf(filepath.Join(n.dir, "net.d"), "sdncni")
}

func (p *pod) runtimeConf() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: p.containerID, NetNS: p.netnsPath(), IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", p.namespace}, {"K8S_POD_NAME", p.name}}}
}

// createPods makes every pod: netns, CNI ADD, a TCP banner server answering its name.
func (d *demo) createPods(ctx context.Context) error {
	section("3. Pods through libcni", "the sdncni binary, called by libcni with K8S_POD_NAMESPACE in CNI_ARGS as a runtime does, puts each pod in its namespace's VPN on its node")
	if err := d.writeConfLists(); err != nil {
		return err
	}
	say("conflist (per node, only the socket differs): %s", filepath.Join(d.nodes[0].dir, "net.d", "10-sdncni.conflist"))
	cni := libcni.NewCNIConfig([]string{d.bin}, nil)
	for _, s := range podSpecs {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := &pod{name: s.name, namespace: s.namespace, vpn: vpnOf(s.namespace), node: d.nodes[s.node],
			netns: nsPrefix + s.name, containerID: "sdncni-demo-" + s.name}
		if out, err := exec.Command("ip", "netns", "add", p.netns).CombinedOutput(); err != nil {
			return fmt.Errorf("add netns %s: %w: %s", p.netns, err, out)
		}
		d.state.NetNS = append(d.state.NetNS, p.netns)
		d.saveState()
		d.onCleanup("", func() error { return deleteNetns(p.netns) })
		if out, err := exec.Command("ip", "-n", p.netns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
			return fmt.Errorf("lo up in %s: %w: %s", p.netns, err, out)
		}
		conf, err := p.node.netConf()
		if err != nil {
			return err
		}
		d.onCleanup(fmt.Sprintf("pod %s: CNI DEL", p.name), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			return cni.DelNetworkList(ctx, conf, p.runtimeConf())
		})
		t0 := time.Now()
		actx, cancel := context.WithTimeout(ctx, 60*time.Second)
		raw, err := cni.AddNetworkList(actx, conf, p.runtimeConf())
		cancel()
		if err != nil {
			return fmt.Errorf("CNI ADD %s: %w", p.name, err)
		}
		took := time.Since(t0)
		res, err := current.NewResultFromResult(raw)
		if err != nil || len(res.IPs) == 0 {
			return fmt.Errorf("CNI ADD %s: result %v: %w", p.name, raw, err)
		}
		p.prefix, _ = netip.ParsePrefix(res.IPs[0].Address.String())
		p.ip = p.prefix.Addr()
		for _, i := range res.Interfaces {
			if i.Sandbox != "" {
				p.mac = i.Mac
			}
		}
		if p.stopBanner, err = serveBanner(p); err != nil {
			return err
		}
		d.onCleanup("", func() error { p.stopBanner(); return nil })
		d.pods = append(d.pods, p)
		say("ADD %s/%s on %s → %s in %s (%s)", p.namespace, p.name, p.node.name, p.prefix, p.vpn, took.Round(time.Millisecond))
	}
	fmt.Println()
	say("each pod's path (pod netns ↔ node netns ↔ OVS ↔ OVN):")
	for _, p := range d.pods {
		if err := d.printPath(ctx, p); err != nil {
			return err
		}
	}
	for _, p := range d.pods {
		conf, err := p.node.netConf()
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err = cni.CheckNetworkList(cctx, conf, p.runtimeConf())
		cancel()
		if err != nil {
			d.fail("CNI CHECK %s: %v", p.name, err)
			say("✗ CNI CHECK %s: %v", p.name, err)
		}
	}
	say("CNI CHECK of every pod passed: veth, address, route, OVS port and its binding, OVN port, fast-path programs and map entries are in place")
	return nil
}

// printPath shows a pod's attachment, each piece read back from where it lives.
func (d *demo) printPath(ctx context.Context, p *pod) error {
	nm := p.names()
	mtu, err := linkMTU(p.netns, "eth0")
	if err != nil {
		return err
	}
	if _, err := linkMTU(p.node.ovn.NetNS, nm.HostIf); err != nil {
		return fmt.Errorf("host veth of %s: %w", p.name, err)
	}
	ofport, err := command(ctx, "ovs-vsctl", "--db="+p.node.ovn.OVSDB, "--timeout=10", "get", "Interface", nm.OVSIf, "ofport")
	if err != nil {
		return err
	}
	ls, err := d.nbctl(ctx, "lsp-get-ls", nm.LSP)
	if err != nil {
		return err
	}
	lsName := strings.Trim(lastField(ls), "()")
	fmt.Printf("     %s  %s/%s  %s  mac %s  mtu %d  on %s, %s\n", bold(p.name), p.namespace, p.name, p.prefix, p.mac, mtu, p.node.name, p.vpn)
	fmt.Printf("         eth0 (netns %s) ↔ veth %s (node netns) [tc eBPF] → OVS internal port %s (br-int ofport %s) ↔ OVN LSP %s on switch %s\n",
		p.netns, nm.HostIf, nm.OVSIf, ofport, nm.LSP, lsName)
	return nil
}

func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// linkMTU reads a link's MTU in a named netns with ip(8).
func linkMTU(netns, link string) (int, error) {
	out, err := exec.Command("ip", "-n", netns, "-j", "link", "show", link).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ip -n %s link show %s: %w: %s", netns, link, err, out)
	}
	var links []struct {
		MTU int `json:"mtu"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ip -n %s link show %s: %q", netns, link, out)
	}
	return links[0].MTU, nil
}

// serveBanner answers every TCP connection to the pod's bannerPort with its name, so a
// probe knows which pod it reached.
func serveBanner(p *pod) (stop func(), err error) {
	pns, err := ns.GetNS(p.netnsPath())
	if err != nil {
		return nil, err
	}
	defer pns.Close()
	var l net.Listener
	if err := pns.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp4", fmt.Sprintf(":%d", bannerPort))
		return err
	}); err != nil {
		return nil, fmt.Errorf("listen in %s: %w", p.name, err)
	}
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
	return func() { _ = l.Close() }, nil
}

func deleteNetns(name string) error {
	if _, err := os.Stat("/run/netns/" + name); os.IsNotExist(err) {
		return nil
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", name, err, out)
	}
	return nil
}

// command runs a command and returns its trimmed output.
func command(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
