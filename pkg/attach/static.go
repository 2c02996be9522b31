package attach

import (
	"context"
	"fmt"
)

// StaticNetworks is a fixed table of networks: namespaces listed for a network land in
// it, every other namespace lands in the default network. It is what the controller
// serves from its flags and networks file; the VPN controller replaces it with networks
// from the API.
type StaticNetworks struct {
	def   string
	byNm  map[string]Network
	order []string
	nsMap map[string]string
}

// NewStaticNetworks validates the table: unique names and ids, a known default, every
// namespace in at most one network.
func NewStaticNetworks(def string, nets []Network, namespaces map[string][]string) (*StaticNetworks, error) {
	s := &StaticNetworks{def: def, byNm: map[string]Network{}, nsMap: map[string]string{}}
	ids := map[uint32]string{}
	for _, n := range nets {
		if err := n.Validate(); err != nil {
			return nil, err
		}
		if _, dup := s.byNm[n.Name]; dup {
			return nil, fmt.Errorf("network %s defined twice", n.Name)
		}
		if other, dup := ids[n.ID]; dup {
			return nil, fmt.Errorf("networks %s and %s share id %d", other, n.Name, n.ID)
		}
		ids[n.ID] = n.Name
		s.byNm[n.Name] = n
		s.order = append(s.order, n.Name)
	}
	if _, ok := s.byNm[def]; !ok {
		return nil, fmt.Errorf("default network %q is not defined", def)
	}
	for net, nss := range namespaces {
		if _, ok := s.byNm[net]; !ok {
			return nil, fmt.Errorf("namespaces mapped to unknown network %q", net)
		}
		for _, ns := range nss {
			if other, dup := s.nsMap[ns]; dup && other != net {
				return nil, fmt.Errorf("namespace %s claimed by networks %s and %s", ns, other, net)
			}
			s.nsMap[ns] = net
		}
	}
	return s, nil
}

// ForNamespace implements Networks.
func (s *StaticNetworks) ForNamespace(_ context.Context, namespace string) (Network, error) {
	if n, ok := s.nsMap[namespace]; ok {
		return s.byNm[n], nil
	}
	return s.byNm[s.def], nil
}

// ByName implements Networks.
func (s *StaticNetworks) ByName(name string) (Network, bool) {
	n, ok := s.byNm[name]
	return n, ok
}

// All implements Networks.
func (s *StaticNetworks) All() []Network {
	out := make([]Network, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, s.byNm[n])
	}
	return out
}
