package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Terminal output: sections, indented blocks and tables, in the bash demo's style.

var start = time.Now()

func bold(s string) string {
	if !isTerminal() {
		return s
	}
	return "\033[1m" + s + "\033[0m"
}

func isTerminal() bool {
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// section starts a numbered step and says what it proves.
func section(title, proves string) {
	fmt.Printf("\n%s\n", bold(fmt.Sprintf("== %s  [%s]", title, elapsed())))
	if proves != "" {
		fmt.Printf("   proves: %s\n", proves)
	}
}

func say(format string, args ...any) { fmt.Printf("   "+format+"\n", args...) }

// block prints multi-line text indented, dropping empty trailing lines.
func block(text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Printf("     %s\n", l)
	}
}

func elapsed() string { return time.Since(start).Round(100 * time.Millisecond).String() }

// table prints rows with columns padded to their widest cell (rune count, so ✓ and ↔
// line up).
func table(header []string, rows [][]string) {
	width := make([]int, len(header))
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))+2))
			}
		}
		fmt.Printf("     %s\n", strings.TrimRight(b.String(), " "))
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}
