package main

import (
	"strings"
	"testing"
)

const comparison = `goos: linux
pkg: x
,old.txt,,new.txt,,,
,sec/op,CI,sec/op,CI,vs base,P
Slower-2,1.0e-06,∞,1.3e-06,∞,+29.93%,p=0.002 n=6
Faster-2,1.0e-06,∞,0.5e-06,∞,-50.00%,p=0.002 n=6
Noise-2,1.0e-06,∞,1.2e-06,∞,~,p=0.310 n=6
Small-2,1.0e-06,∞,1.02e-06,∞,+2.00%,p=0.002 n=6
geomean,1.0e-06,,1.3e-06,,+29.93%,

,old.txt,,new.txt,,,
,events/s,CI,events/s,CI,vs base,P
Slower-2,302.5,∞,202.5,∞,-33.06%,p=0.002 n=6
Faster-2,302.5,∞,402.5,∞,+33.06%,p=0.002 n=6
Gone-2,302.5,∞,,,?,
geomean,302.5,,202.5,,-33.06%,
`

func TestOnlySignificantChangesForTheWorseAreReported(t *testing.T) {
	var out strings.Builder
	found, err := regressions(strings.NewReader(comparison), &out, 5)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if found != 2 || len(lines) != 3 ||
		!strings.Contains(lines[0], "Slower-2") || !strings.Contains(lines[0], "sec/op") ||
		!strings.Contains(lines[1], "Slower-2") || !strings.Contains(lines[1], "events/s") {
		t.Errorf("%d regressions:\n%s", found, out.String())
	}
	if !strings.Contains(lines[2], "5 significant changes compared, 2 regressions") {
		t.Errorf("summary %q", lines[2])
	}
}
