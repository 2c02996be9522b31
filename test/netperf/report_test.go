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
