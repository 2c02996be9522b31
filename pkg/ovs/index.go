package ovs

import (
	"github.com/ovn-kubernetes/libovsdb/model"
)

// northboundIndexes are client-side indexes of the NB cache, so that a Service event
// finds its own load balancers and endpoint routes without a scan of every tenant's
// rows (issue 12, item 7). libovsdb uses them for Where(model).List; a lookup may also
// return rows that merely share an empty index value, so callers filter what comes back.
func northboundIndexes() map[string][]model.ClientIndex {
	return map[string][]model.ClientIndex{
		"Load_Balancer": {
			{Columns: []model.ColumnKey{{Column: "name"}}},
			{Columns: []model.ColumnKey{{Column: "external_ids", Key: KeyService}}},
		},
		"Logical_Router_Static_Route": {
			{Columns: []model.ColumnKey{{Column: "external_ids", Key: KeyNetwork}, {Column: "ip_prefix"}}},
		},
	}
}
