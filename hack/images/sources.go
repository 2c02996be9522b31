package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// aptSources are the machine's own apt sources for one Debian suite family, split by
// format because mmdebstrap takes one format per MIRROR argument.
type aptSources struct {
	oneLine string // sources.list lines
	deb822  string // .sources stanzas
}

// machineSources reads /etc/apt/sources.list and sources.list.d/*.list|*.sources and
// keeps the entries of suite (and suite-updates, suite-security, ...), so third-party
// repositories the host also uses do not leak into the image.
func machineSources(etcApt, suite string) (aptSources, error) {
	var src aptSources
	lists := []string{filepath.Join(etcApt, "sources.list")}
	more, err := filepath.Glob(filepath.Join(etcApt, "sources.list.d", "*.list"))
	if err != nil {
		return src, fmt.Errorf("list apt sources: %w", err)
	}
	lists = append(lists, more...)
	for _, f := range lists {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return src, fmt.Errorf("read apt sources: %w", err)
		}
		src.oneLine += filterOneLine(string(data), suite)
	}
	stanzaFiles, err := filepath.Glob(filepath.Join(etcApt, "sources.list.d", "*.sources"))
	if err != nil {
		return src, fmt.Errorf("list apt sources: %w", err)
	}
	slices.Sort(stanzaFiles)
	for _, f := range stanzaFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return src, fmt.Errorf("read apt sources: %w", err)
		}
		src.deb822 += filterDeb822(string(data), suite)
	}
	if src.oneLine == "" && src.deb822 == "" {
		return src, fmt.Errorf("no apt sources for %s under %s", suite, etcApt)
	}
	return src, nil
}

func suiteMatches(s, suite string) bool {
	return s == suite || strings.HasPrefix(s, suite+"-") || strings.HasPrefix(s, suite+"/")
}

// filterOneLine keeps the "deb" lines of suite; "deb [opts] URI SUITE COMPONENTS...".
func filterOneLine(data, suite string) string {
	var b strings.Builder
	for line := range strings.Lines(data) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "deb ") {
			continue
		}
		rest := strings.TrimSpace(strings.TrimPrefix(line, "deb "))
		if strings.HasPrefix(rest, "[") {
			_, after, ok := strings.Cut(rest, "]")
			if !ok {
				continue
			}
			rest = after
		}
		f := strings.Fields(rest)
		if len(f) >= 2 && suiteMatches(f[1], suite) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// filterDeb822 keeps the enabled "deb" stanzas with a Suites entry of suite, comments
// dropped.
func filterDeb822(data, suite string) string {
	var b strings.Builder
	for stanza := range strings.SplitSeq(data, "\n\n") {
		var lines []string
		fields := map[string]string{}
		for line := range strings.Lines(stanza) {
			line = strings.TrimRight(line, "\n")
			if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
				continue
			}
			lines = append(lines, line)
			if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
				fields[strings.ToLower(k)] = strings.TrimSpace(v)
			}
		}
		if strings.EqualFold(fields["enabled"], "no") || !slices.Contains(strings.Fields(fields["types"]), "deb") {
			continue
		}
		if !slices.ContainsFunc(strings.Fields(fields["suites"]), func(s string) bool { return suiteMatches(s, suite) }) {
			continue
		}
		b.WriteString(strings.Join(lines, "\n") + "\n\n")
	}
	return b.String()
}
