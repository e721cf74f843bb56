package cli

import "io"

// Terminal reports whether w is a terminal: a person reading, so output may
// rewrite a line in place (a progress line) and be condensed for reading.
func (e *Env) Terminal(w io.Writer) bool { return isTerminal(w) }

// Colour reports whether output to w may be coloured: w is a terminal and the
// environment does not set NO_COLOR (https://no-color.org: any non-empty value).
func (e *Env) Colour(w io.Writer) bool {
	return e.Getenv("NO_COLOR") == "" && isTerminal(w)
}
