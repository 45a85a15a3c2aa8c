package main

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// lockedWriter serializes Writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// peopleWriter carries everything ue-prefect prints for people to stderr,
// where a line that starts with OutputPrefix is read as output fields (the
// UAC extension trusts such lines). Text from outside (a state message, a
// flow run's log line, a server's error detail) may hold line breaks, so a
// line of it could start with the prefix. peopleWriter makes that
// impossible: a carriage return or any other line break a reader may split
// on (Python's str.splitlines) becomes a newline, and a line that would
// start with the prefix's marker is indented. Only the Progress callback
// writes output lines, and not through here.
//
// Each Write is taken as starting where the previous one ended; ue-prefect
// writes whole lines.
type peopleWriter struct {
	w         io.Writer
	midLine   bool // the last Write did not end with a newline
	lineBreak *strings.Replacer
}

// outputMarker is what a spoofed line would start with (the prefix's
// trailing space aside, so a tab or a bare marker is caught too).
var outputMarker = strings.TrimSpace(OutputPrefix)

func newPeopleWriter(w io.Writer) *peopleWriter {
	return &peopleWriter{w: w, lineBreak: strings.NewReplacer(
		"\r\n", "\n", "\r", "\n", "\v", "\n", "\f", "\n", "\x1c", "\n", "\x1d", "\n", "\x1e", "\n",
		"\u0085", "\n", "\u2028", "\n", "\u2029", "\n")}
}

func (p *peopleWriter) Write(b []byte) (int, error) {
	text := p.lineBreak.Replace(string(b))
	lines := strings.SplitAfter(text, "\n")
	var out bytes.Buffer
	for i, l := range lines {
		if (i > 0 || !p.midLine) && strings.HasPrefix(l, outputMarker) {
			out.WriteString("  ")
		}
		out.WriteString(l)
	}
	if len(text) > 0 {
		p.midLine = !strings.HasSuffix(text, "\n")
	}
	if _, err := p.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}
