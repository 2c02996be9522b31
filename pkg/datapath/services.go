//go:build linux

package datapath

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// ServiceEndpoint is a port of a pod that an OVN load balancer may send Service traffic
// to. Flows from or to it pass OVS (where OVN un-DNATs the replies) instead of the fast
// path; the rest of the pod's traffic keeps the fast path.
type ServiceEndpoint struct {
	VPN      uint32
	IP       netip.Addr // pod IPv4
	Port     uint16     // target port
	Protocol string     // "tcp" or "udp"
}

// MaxServiceEndpoints is how many ServiceEndpoints the datapath holds (sdncni_svc).
const MaxServiceEndpoints = 65536

// ErrTooManyServiceEndpoints is returned by SetServiceEndpoints when the set does not fit.
var ErrTooManyServiceEndpoints = errors.New("too many service endpoints")

func (e ServiceEndpoint) key() (bpfSvcKey, error) {
	var proto uint8
	switch e.Protocol {
	case "tcp":
		proto = 6
	case "udp":
		proto = 17
	default:
		return bpfSvcKey{}, fmt.Errorf("service endpoint %s:%d: protocol %q", e.IP, e.Port, e.Protocol)
	}
	if !e.IP.Unmap().Is4() || e.VPN == 0 || e.Port == 0 {
		return bpfSvcKey{}, fmt.Errorf("service endpoint %d/%s:%d: not an IPv4 endpoint of a VPN", e.VPN, e.IP, e.Port)
	}
	var port [2]byte
	binary.BigEndian.PutUint16(port[:], e.Port)
	return bpfSvcKey{Vpn: e.VPN, Ip: be32(e.IP), Port: binary.NativeEndian.Uint16(port[:]), Proto: proto}, nil
}

// SetServiceEndpoints makes the datapath's set of Service endpoints exactly eps: new
// ones are added before stale ones are removed, so an endpoint in both sets never
// leaves it. Invalid entries are reported and skipped; a set larger than
// MaxServiceEndpoints is refused whole (ErrTooManyServiceEndpoints) and the old one stays.
func (d *Datapath) SetServiceEndpoints(ctx context.Context, eps []ServiceEndpoint) error {
	want := make(map[bpfSvcKey]bool, len(eps))
	var errs []error
	for _, e := range eps {
		k, err := e.key()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		want[k] = true
	}
	if len(want) > MaxServiceEndpoints {
		return fmt.Errorf("%w: %d, room for %d", ErrTooManyServiceEndpoints, len(want), MaxServiceEndpoints)
	}
	m := d.objs.SdncniSvc
	for k := range want {
		if err := m.Update(&k, uint8(1), ebpf.UpdateAny); err != nil {
			errs = append(errs, fmt.Errorf("add service endpoint %+v: %w", k, err))
		}
	}
	var (
		k     bpfSvcKey
		v     uint8
		stale []bpfSvcKey
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("list service endpoints: %w", err))
	}
	for _, k := range stale {
		if err := m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("remove service endpoint %+v: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// ServiceEndpoints lists the Service endpoints the datapath holds.
func (d *Datapath) ServiceEndpoints(ctx context.Context) ([]ServiceEndpoint, error) {
	var (
		k   bpfSvcKey
		v   uint8
		out []ServiceEndpoint
	)
	it := d.objs.SdncniSvc.Iterate()
	for it.Next(&k, &v) {
		var port [2]byte
		binary.NativeEndian.PutUint16(port[:], k.Port)
		proto := "tcp"
		if k.Proto == 17 {
			proto = "udp"
		}
		out = append(out, ServiceEndpoint{VPN: k.Vpn, IP: addrFromBE32(k.Ip), Port: binary.BigEndian.Uint16(port[:]), Protocol: proto})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list service endpoints: %w", err)
	}
	return out, nil
}
