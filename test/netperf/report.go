package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Output file names inside the output directory.
const (
	fileJSON       = "results.json"
	fileMarkdown   = "results.md"
	fileThroughput = "throughput.png"
	fileLatency    = "latency.png"
)

// writeReport writes results.json, results.md and the charts into dir.
func writeReport(dir string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, fileJSON), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, fileMarkdown), []byte(markdown(res)), 0o644); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	for _, g := range groups {
		cases := casesOf(res.Cases, g)
		if len(cases) == 0 {
			continue
		}
		if err := drawChart(filepath.Join(dir, g.ChartPrefix+fileThroughput), g.Title+": throughput (median, min–max)", "Gbit/s",
			cases, []string{mTCP1, mTCP4, mUDP}, false); err != nil {
			return err
		}
		if err := drawChart(filepath.Join(dir, g.ChartPrefix+fileLatency), g.Title+": request/response latency (median, min–max)", "µs",
			cases, []string{mP50, mP99}, true); err != nil {
			return err
		}
	}
	return nil
}

// rerender reads a results.json and writes its report again into dir, recomputing the
// summaries from the raw runs.
func rerender(from, dir string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("parse results: %w", err)
	}
	summarize(res.Cases)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	return writeReport(dir, &res)
}

func metricByName(name string) Metric {
	for _, m := range metrics {
		if m.Name == name {
			return m
		}
	}
	return Metric{Name: name, Label: name}
}

// markdown renders the summary: medians with spread, ratios, cases not reported, and
// the environment.
func markdown(res *Results) string {
	var b strings.Builder
	m := res.Meta
	fmt.Fprintf(&b, "# netperf results\n\n")
	fmt.Fprintf(&b, "%s, %d rounds × %s per iperf3 run, cases interleaved in a rotating order. ",
		m.Start.Format("2006-01-02 15:04 MST"), m.Flags.Rounds, m.Flags.Duration)
	fmt.Fprintf(&b, "Kernel %s, %s × %d, %s, commit %s%s.\n\n", m.Kernel, m.CPUModel, m.Cores, m.OVS, short(m.GitCommit), dirty(m.GitDirty))

	for _, g := range groups {
		cases := casesOf(res.Cases, g)
		if len(cases) == 0 {
			continue
		}
		groupTables(&b, g, cases)
	}
	paths(&b, res.Cases)

	var other []*CaseResult
	for _, c := range res.Cases {
		if c.Status != statusOK {
			other = append(other, c)
		}
	}
	if len(other) > 0 {
		b.WriteString("## Not reported\n\n")
		for _, c := range other {
			reason := strings.TrimPrefix(oneLine(c.Reason), c.Status+": ")
			fmt.Fprintf(&b, "- **%s**: %s — %s\n", c.Name, c.Status, reason)
		}
	}

	b.WriteString("\n## Environment\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| iperf3 | %s |\n| OVN | %s |\n| CNI plugins | %s |\n| Go | %s |\n", m.Iperf3, m.OVN, m.PluginsVersion, m.Go)
	for _, c := range res.Cases {
		keys := make([]string, 0, len(c.Info))
		for k := range c.Info {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "| %s %s | %s |\n", c.Name, k, c.Info[k])
		}
		if c.Offloads != "" {
			fmt.Fprintf(&b, "| %s pod offloads | %s |\n", c.Name, c.Offloads)
		}
	}
	return b.String()
}

// casesOf are the cases of group g, in report order.
func casesOf(cases []*CaseResult, g group) []*CaseResult {
	var out []*CaseResult
	for _, c := range cases {
		if groupOf(c.Name).Name == g.Name {
			out = append(out, c)
		}
	}
	return out
}

// groupTables writes a group's medians and its ratios to the group's references.
func groupTables(b *strings.Builder, g group, cases []*CaseResult) {
	var ok []*CaseResult
	for _, c := range cases {
		if c.Status == statusOK {
			ok = append(ok, c)
		}
	}
	fmt.Fprintf(b, "## %s: median (min–max)\n\n| metric | unit |", g.Title)
	for _, c := range cases {
		fmt.Fprintf(b, " %s |", c.Name)
	}
	b.WriteString("\n|---|---|")
	b.WriteString(strings.Repeat("---|", len(cases)))
	b.WriteString("\n")
	for _, mt := range metrics {
		fmt.Fprintf(b, "| %s | %s |", mt.Label, mt.Unit)
		for _, c := range cases {
			b.WriteString(" " + cell(c, mt.Name) + " |")
		}
		b.WriteString("\n")
	}

	fmt.Fprintf(b, "\n### %s: ratios of medians (vs %s / vs %s)\n\n", g.Title, g.Refs[0], g.Refs[1])
	b.WriteString("Above 1 is more of the metric: better for throughput and connect rate, worse for latency, CPU, loss and ADD time.\n\n| metric |")
	for _, c := range ok {
		fmt.Fprintf(b, " %s |", c.Name)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(ok)) + "\n")
	for _, mt := range metrics {
		fmt.Fprintf(b, "| %s |", mt.Label)
		for _, c := range ok {
			s, has := c.Summary[mt.Name]
			if !has {
				b.WriteString(" – |")
				continue
			}
			r := s.vsRefs(g)
			fmt.Fprintf(b, " %s / %s |", fmtRatio(r[0]), fmtRatio(r[1]))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// paths writes, per case whose counters were checked, which path carried its iperf3
// runs, from the verifier's verdicts.
func paths(b *strings.Builder, cases []*CaseResult) {
	var lines []string
	for _, c := range cases {
		count := map[string]int{}
		total := 0
		for _, r := range c.Runs {
			for _, ip := range []*IperfRun{r.TCP1, r.TCP4, r.UDP} {
				if ip != nil && ip.Path != "" {
					count[ip.Path]++
					total++
				}
			}
		}
		if total == 0 {
			continue
		}
		keys := make([]string, 0, len(count))
		for k := range count {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s in %d of %d", k, count[k], total)
		}
		lines = append(lines, fmt.Sprintf("- **%s**: %s", c.Name, strings.Join(parts, ", ")))
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("## Path taken (iperf3 runs, from the datapath's counters)\n\n")
	b.WriteString(strings.Join(lines, "\n") + "\n\n")
}

func cell(c *CaseResult, metric string) string {
	if c.Status != statusOK {
		if c.Status == statusNotAvailable {
			return "not available yet"
		}
		return c.Status
	}
	s, ok := c.Summary[metric]
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%s (%s–%s)", num(s.Median), num(s.Min), num(s.Max))
}

// num prints three significant digits, enough for figures this noisy.
func num(x float64) string {
	switch {
	case x == 0:
		return "0"
	case x >= 1000 || x <= -1000:
		return fmt.Sprintf("%.0f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}

func fmtRatio(r *float64) string {
	if r == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f×", *r)
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func dirty(d bool) string {
	if d {
		return " (dirty)"
	}
	return ""
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
