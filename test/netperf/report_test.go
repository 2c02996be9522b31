package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeCase builds an ok case whose runs carry the given single-stream rates and p50s.
func fakeCase(name string, gbps, p50 []float64) *CaseResult {
	c := &CaseResult{Name: name, Status: statusOK}
	for i := range gbps {
		r := Run{Round: i,
			TCP1: &IperfRun{Bytes: int64(gbps[i] * 1e9 / 8), Seconds: 1, BitsPerSecond: gbps[i] * 1e9, ClientCPU: 0.5, ServerCPU: 0.5},
			RR:   &RRRun{Count: 10, P50us: p50[i], P99us: 2 * p50[i]},
		}
		r.Metrics = runMetrics(&r)
		c.Runs = append(c.Runs, r)
	}
	return c
}

func TestSummarizeRatios(t *testing.T) {
	veth := fakeCase(caseVeth, []float64{12, 10, 11}, []float64{30, 36, 33})
	bridge := fakeCase(caseBridge, []float64{10, 12, 8}, []float64{28, 30, 32})
	fast := fakeCase(caseSdncniFast, []float64{9, 11, 10}, []float64{31, 31, 40})
	ovs := &CaseResult{Name: caseSdncniOVS, Status: statusNotAvailable, Reason: "not available: not built yet"}
	cases := []*CaseResult{veth, bridge, ovs, fast}
	summarize(cases)

	require.Nil(t, ovs.Summary, "a case that did not run has no numbers")
	s := fast.Summary[mTCP1]
	require.Equal(t, Spread{N: 3, Median: 10, Min: 9, Max: 11}, s.Spread)
	require.InDelta(t, 1.0, *s.VsBridge, 1e-9) // median 10 against bridge's 10
	require.InDelta(t, 10.0/11.0, *s.VsVeth, 1e-9)
	p := fast.Summary[mP50]
	require.InDelta(t, 31.0/30.0, *p.VsBridge, 1e-9)
	require.InDelta(t, 31.0/33.0, *p.VsVeth, 1e-9)
	require.InDelta(t, 1.0, *veth.Summary[mTCP1].VsVeth, 1e-9)
	// CPU per Gbit: 1 CPU-s over the Gbit moved in each run.
	require.InDelta(t, 1.0/10, fast.Summary[mCPU].Median, 1e-9)
	_, hasLoop := fast.Summary[mLoopAdd]
	require.False(t, hasLoop, "no ADD/DEL loop samples, no summary")
}

func TestSummarizeWithoutReferences(t *testing.T) {
	fast := fakeCase(caseSdncniFast, []float64{9, 11, 10}, []float64{31, 31, 40})
	summarize([]*CaseResult{fast, {Name: caseBridge, Status: statusFailed, Reason: "boom"}})
	require.Nil(t, fast.Summary[mTCP1].VsBridge)
	require.Nil(t, fast.Summary[mTCP1].VsVeth)
}

func TestWriteReport(t *testing.T) {
	dir := t.TempDir()
	res := &Results{Metrics: metrics, Cases: []*CaseResult{
		fakeCase(caseVeth, []float64{12, 10, 11}, []float64{30, 36, 33}),
		fakeCase(caseBridge, []float64{10, 12, 8}, []float64{28, 30, 32}),
		{Name: caseSdncniOVS, Status: statusNotAvailable, Reason: "not available: controller exited"},
		{Name: caseSdncniFast, Status: statusFailed, Reason: "verify tcp1: fast path claimed but OVS saw the traffic"},
	}}
	summarize(res.Cases)
	require.NoError(t, writeReport(dir, res))
	for _, f := range []string{fileJSON, fileMarkdown, fileThroughput, fileLatency} {
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Positive(t, fi.Size(), f)
	}
	png, err := os.ReadFile(filepath.Join(dir, fileThroughput))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(png), "\x89PNG"))
	md, err := os.ReadFile(filepath.Join(dir, fileMarkdown))
	require.NoError(t, err)
	for _, want := range []string{
		"| TCP 1 stream | Gbit/s | 11 (10–12) | 10 (8–12) | not available yet | failed |",
		"**sdncni-ovs**: not available — controller exited",
		"**sdncni-fast**: failed — verify tcp1",
		"1.10× / 1.00×", // veth vs bridge, TCP 1 stream
	} {
		require.Contains(t, string(md), want)
	}
}

func TestChartWithoutReportedCases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.png")
	require.NoError(t, drawChart(path, "t", "u", []*CaseResult{{Name: caseVeth, Status: statusFailed}}, []string{mTCP1}, true))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Positive(t, fi.Size())
}

func TestRerender(t *testing.T) {
	src := t.TempDir()
	res := &Results{Metrics: metrics, Cases: []*CaseResult{
		fakeCase(caseVeth, []float64{12, 10, 11}, []float64{30, 36, 33}),
		fakeCase(caseBridge, []float64{10, 12, 8}, []float64{28, 30, 32}),
	}}
	summarize(res.Cases)
	require.NoError(t, writeReport(src, res))
	dst := t.TempDir()
	require.NoError(t, rerender(filepath.Join(src, fileJSON), dst))
	a, err := os.ReadFile(filepath.Join(src, fileMarkdown))
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dst, fileMarkdown))
	require.NoError(t, err)
	require.Equal(t, string(a), string(b))
}

func TestSummarizeCrossRatios(t *testing.T) {
	under := fakeCase(caseUnderlay, []float64{20, 22, 21}, []float64{20, 22, 21})
	vx := fakeCase(caseVXLANBridge, []float64{8, 10, 12}, []float64{40, 44, 42})
	gen := fakeCase(caseSdncniGeneve, []float64{1, 2, 1.5}, []float64{200, 210, 220})
	bridge := fakeCase(caseBridge, []float64{10, 12, 8}, []float64{28, 30, 32})
	summarize([]*CaseResult{bridge, under, vx, gen})

	s := gen.Summary[mTCP1]
	require.InDelta(t, 1.5/10, *s.VsVXLANBridge, 1e-9)
	require.InDelta(t, 1.5/21, *s.VsUnderlay, 1e-9)
	require.Nil(t, s.VsBridge, "a cross-node case is not divided by a same-node reference")
	require.Nil(t, s.VsVeth)
	require.InDelta(t, 210.0/42, *gen.Summary[mP50].VsVXLANBridge, 1e-9)
	require.Equal(t, [2]*float64{s.VsVXLANBridge, s.VsUnderlay}, s.vsRefs(groupOf(caseSdncniGeneve)))

	b := bridge.Summary[mTCP1]
	require.Nil(t, b.VsVXLANBridge)
	require.InDelta(t, 1.0, *b.VsBridge, 1e-9)
	require.Nil(t, b.VsVeth, "no veth case in this run")
}

func TestGroups(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range groups {
		for _, c := range g.Cases {
			require.False(t, seen[c], "%s in two groups", c)
			seen[c] = true
			require.Equal(t, g.Name, groupOf(c).Name)
		}
		for _, r := range g.Refs {
			require.Contains(t, g.Cases, r, "a group's references are its own cases")
		}
	}
	for _, c := range allCases {
		require.True(t, seen[c], "%s has a group", c)
	}
}

func TestWriteReportCrossNode(t *testing.T) {
	dir := t.TempDir()
	fastCross := fakeCase(caseSdncniFastCross, []float64{1, 2, 1.5}, []float64{200, 210, 220})
	for i := range fastCross.Runs {
		fastCross.Runs[i].TCP1.Path = pathGeneve
	}
	fastCross.Runs[2].TCP1.Path = pathKernelVXLAN
	res := &Results{Metrics: metrics, Cases: []*CaseResult{
		fakeCase(caseVeth, []float64{12, 10, 11}, []float64{30, 36, 33}),
		fakeCase(caseBridge, []float64{10, 12, 8}, []float64{28, 30, 32}),
		fakeCase(caseUnderlay, []float64{20, 22, 21}, []float64{20, 22, 21}),
		fakeCase(caseVXLANBridge, []float64{8, 10, 12}, []float64{40, 44, 42}),
		{Name: caseSdncniGeneve, Status: statusFailed, Reason: "verify tcp1: geneve claimed but the traffic took kernel-vxlan"},
		fastCross,
	}}
	summarize(res.Cases)
	require.NoError(t, writeReport(dir, res))
	for _, f := range []string{fileThroughput, fileLatency, "cross-" + fileThroughput, "cross-" + fileLatency} {
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Positive(t, fi.Size(), f)
	}
	md, err := os.ReadFile(filepath.Join(dir, fileMarkdown))
	require.NoError(t, err)
	for _, want := range []string{
		"## Same node: median (min–max)\n\n| metric | unit | veth | bridge |\n",
		"### Same node: ratios of medians (vs bridge / vs veth)",
		"## Across nodes: median (min–max)\n\n| metric | unit | underlay | vxlan-bridge | sdncni-geneve | sdncni-fast-cross |\n",
		"| TCP 1 stream | Gbit/s | 21 (20–22) | 10 (8–12) | failed | 1.5 (1–2) |",
		"### Across nodes: ratios of medians (vs vxlan-bridge / vs underlay)",
		"| TCP 1 stream | 2.10× / 1.00× | 1.00× / 0.48× | 0.15× / 0.07× |",
		"- **sdncni-fast-cross**: geneve in 2 of 3, kernel-vxlan in 1 of 3",
		"**sdncni-geneve**: failed — verify tcp1",
	} {
		require.Contains(t, string(md), want)
	}
}
