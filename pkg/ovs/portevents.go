package ovs

import (
	"github.com/ovn-kubernetes/libovsdb/cache"
	"github.com/ovn-kubernetes/libovsdb/model"

	"github.com/sdncni/sdncni/pkg/ovs/model/nb"
)

// OnPodPort calls f with the network of every pod logical port (owned, no role) that
// appears in or leaves the Northbound database, whoever wrote it (a node's ADD or DEL).
// f runs on libovsdb's cache goroutine and must not block. The handler lives as long
// as the Northbound; reconnects keep it.
func (n *Northbound) OnPodPort(f func(network string)) {
	call := func(m model.Model) {
		lsp, ok := m.(*nb.LogicalSwitchPort)
		if !ok {
			return
		}
		if o, ok := OwnerFromExternalIDs(lsp.ExternalIDs); ok && o.Role == "" && o.Network != "" {
			f(o.Network)
		}
	}
	n.c.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(_ string, m model.Model) { call(m) },
		DeleteFunc: func(_ string, m model.Model) { call(m) },
	})
}
