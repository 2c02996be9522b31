package main

import (
	"testing"

	"github.com/sdncni/sdncni/pkg/policy"
)

// BenchmarkCompile times what one VPN's reconcile computes (pkg/netpol.Reconciler:
// policy.Resolve of the snapshot, then Compile) for 1,000 policies × 200 pods of the
// benchmark's shape. Run: make bench-policy-compile.
func BenchmarkCompile(b *testing.B) {
	for _, c := range []struct {
		name           string
		pods, policies int
	}{{"100x200", 200, 100}, {"1000x200", 200, 1000}} {
		s := syntheticSnapshot(c.pods, c.policies)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var acls, sets int
			for b.Loop() {
				r := policy.Resolve(s).Compile()
				acls, sets = len(r.ACLs), len(r.AddressSets)
			}
			b.ReportMetric(float64(acls), "acls")
			b.ReportMetric(float64(sets), "sets")
		})
	}
}
