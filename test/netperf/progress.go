package main

import (
	"fmt"
	"io"
	"time"
)

// progress keeps one line on stderr up to date while the harness runs.
type progress struct {
	w     io.Writer
	total int
	done  int
	start time.Time
	width int
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, start: time.Now()}
}

// step announces what runs next; advance counts a finished step.
func (p *progress) step(format string, args ...any) {
	el := time.Since(p.start).Round(time.Second)
	line := fmt.Sprintf("[%d/%d %s] %s", p.done, p.total, el, fmt.Sprintf(format, args...))
	pad := p.width - len(line)
	p.width = len(line)
	if pad < 0 {
		pad = 0
	}
	fmt.Fprintf(p.w, "\r%s%*s", line, pad, "")
}

func (p *progress) advance() { p.done++ }

func (p *progress) finish() { fmt.Fprintln(p.w) }
