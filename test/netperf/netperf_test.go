package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/internal/testenv"
)

// TestQuickRun runs the harness in --quick mode on the cases that need no OVS — veth and
// bridge on one node, underlay and vxlan-bridge across the two — and checks that
// results.json is well formed, every number traces back to a real run and the
// cross-node traffic took the path each case claims.
func TestQuickRun(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "iperf3", "nsenter", "ethtool", "ip", "go")

	o := defaultOptions()
	o.Quick = true
	o.applyQuick()
	o.Cases = []string{caseVeth, caseBridge, caseUnderlay, caseVXLANBridge}
	o.Out = t.TempDir()
	repo, err := repoRoot()
	require.NoError(t, err)
	o.Repo = repo

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	require.NoError(t, run(ctx, o))
	t.Logf("quick run took %s", time.Since(start))

	left, err := ourNetNS()
	require.NoError(t, err)
	require.Empty(t, left, "namespaces left behind")

	b, err := os.ReadFile(filepath.Join(o.Out, fileJSON))
	require.NoError(t, err)
	var res Results
	require.NoError(t, json.Unmarshal(b, &res))

	m := res.Meta
	require.NotEmpty(t, m.Kernel)
	require.Positive(t, m.Cores)
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{40}$`), m.GitCommit)
	require.True(t, m.End.After(m.Start))
	require.Equal(t, o.Rounds, m.Flags.Rounds)

	require.Len(t, res.Cases, 4)
	byName := map[string]*CaseResult{}
	for _, c := range res.Cases {
		require.Equal(t, statusOK, c.Status, "%s: %s", c.Name, c.Reason)
		require.NotEmpty(t, c.Offloads)
		byName[c.Name] = c
		checkRuns(t, c, o, m.Start, m.End)
	}
	checkInterleaved(t, res.Cases, o.Rounds)
	require.NotEmpty(t, byName[caseBridge].AddLoop, "bridge ADD/DEL loop ran")
	for name, path := range map[string]string{caseUnderlay: pathUnderlay, caseVXLANBridge: pathVXLANBridge} {
		for _, r := range byName[name].Runs {
			for _, ip := range []*IperfRun{r.TCP1, r.TCP4, r.UDP} {
				require.Equal(t, path, ip.Path, "%s round %d %s: %s", name, r.Round, ip.Kind, ip.Verification)
			}
		}
	}

	// Ratios recomputed from the raw runs' medians match the report.
	for _, c := range res.Cases {
		for _, mt := range metrics {
			if !mt.PerRun || (mt.Name == mAdd && c.Name == caseUnderlay) {
				continue
			}
			sp, ok := spreadOf(c.samples(mt.Name))
			require.True(t, ok)
			got := c.Summary[mt.Name]
			require.InDelta(t, sp.Median, got.Median, 1e-9, "%s %s", c.Name, mt.Name)
			g := groupOf(c.Name)
			vs := got.vsRefs(g)
			for i, ref := range g.Refs {
				r := vs[i]
				refMed, _ := spreadOf(byName[ref].samples(mt.Name))
				if refMed.Median == 0 {
					require.Nil(t, r)
					continue
				}
				require.NotNil(t, r, "%s %s vs %s", c.Name, mt.Name, ref)
				require.InDelta(t, sp.Median/refMed.Median, *r, 1e-9)
			}
		}
	}

	for _, f := range []string{fileMarkdown, fileThroughput, fileLatency} {
		fi, err := os.Stat(filepath.Join(o.Out, f))
		require.NoError(t, err)
		require.Positive(t, fi.Size(), f)
	}
}

// checkRuns checks that a case has every metric in every round, and that each figure
// agrees with the raw iperf3 fields stored next to it.
func checkRuns(t *testing.T, c *CaseResult, o *options, start, end time.Time) {
	t.Helper()
	require.GreaterOrEqual(t, len(c.Runs), o.Rounds, c.Name)
	for _, r := range c.Runs {
		for _, mt := range metrics {
			if mt.PerRun && (mt.Name != mAdd || c.Name != caseUnderlay) { // the underlay adds no pods
				require.Contains(t, r.Metrics, mt.Name, "%s round %d", c.Name, r.Round)
			}
		}
		for _, ip := range []*IperfRun{r.TCP1, r.TCP4, r.UDP} {
			require.NotNil(t, ip)
			require.Positive(t, ip.BitsPerSecond)
			require.Positive(t, ip.Bytes)
			require.InDelta(t, float64(o.Duration/time.Second), ip.Seconds, 0.5, "%s %s", c.Name, ip.Kind)
			rate := float64(ip.Bytes) * 8 / ip.Seconds
			require.InEpsilon(t, rate, ip.BitsPerSecond, 0.01, "%s %s: bytes/seconds vs reported rate", c.Name, ip.Kind)
			require.GreaterOrEqual(t, ip.TimeSecs, start.Unix()-1, "iperf3 timestamp inside the run")
			require.LessOrEqual(t, ip.TimeSecs, end.Unix()+1)
			require.Positive(t, ip.ClientCPU+ip.ServerCPU)
		}
		require.InDelta(t, r.TCP1.Gbps(), r.Metrics[mTCP1], 1e-9)
		require.InDelta(t, r.TCP4.Gbps(), r.Metrics[mTCP4], 1e-9)
		require.InDelta(t, r.UDP.Gbps(), r.Metrics[mUDP], 1e-9)
		require.Positive(t, r.RR.Count)
		require.Positive(t, r.RR.P50us)
		require.LessOrEqual(t, r.RR.P50us, r.RR.P99us)
		require.Positive(t, r.Connect.Count)
		require.Positive(t, r.Metrics[mConnect])
		if c.Name != caseUnderlay {
			require.NotEmpty(t, r.AddMS)
			require.Positive(t, r.Metrics[mAdd])
		}
	}
}

// checkInterleaved checks every round ran every case and the order rotated.
func checkInterleaved(t *testing.T, cases []*CaseResult, rounds int) {
	t.Helper()
	firstOf := map[int]string{}
	for _, c := range cases {
		seen := map[int]bool{}
		for _, r := range c.Runs {
			seen[r.Round] = true
			if r.Position == 0 {
				firstOf[r.Round] = c.Name
			}
		}
		require.Len(t, seen, rounds, "%s ran in every round", c.Name)
	}
	require.NotEqual(t, firstOf[0], firstOf[1], "the order rotates between rounds")
}
