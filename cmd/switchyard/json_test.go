package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// jsonDocument decodes out as exactly one JSON object.
func jsonDocument(t *testing.T, what string, out []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(out)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", what, err, out)
	}
	if dec.More() {
		t.Fatalf("%s: more than one JSON document:\n%s", what, out)
	}
}

// load --json and check --json print one JSON document each: the load's figures,
// and every invariant with what broke it.
func TestLoadAndCheckSpeakJSON(t *testing.T) {
	s := startUp(t, fullPlatform)
	out, err := execIn(s.dir, "load", "--rate", "20", "--duration", "2s", "--customers", "3", "--settle", "30s", "--json").Output()
	if err != nil {
		t.Fatalf("load --json: %v\n%s", err, out)
	}
	var load struct {
		Scheduled, Accepted int
		Outcomes            map[string]int `json:"outcomes"`
		P99                 float64        `json:"place_p99_ms"`
		AcceptedFile        string         `json:"accepted_file"`
	}
	jsonDocument(t, "load --json", out, &load)
	if load.Scheduled != 40 || load.Accepted == 0 || load.Outcomes["CONFIRMED"] == 0 || load.P99 <= 0 || load.AcceptedFile == "" {
		t.Errorf("load --json: %+v\n%s", load, out)
	}

	type report struct {
		OK         bool `json:"ok"`
		Accepted   int  `json:"accepted_ids"`
		Invariants []struct {
			Name       string   `json:"name"`
			OK         bool     `json:"ok"`
			Checked    int      `json:"checked"`
			Violations []string `json:"violations"`
		} `json:"invariants"`
	}
	out, err = execIn(s.dir, "check", "--wait", "30s", "--json").Output()
	if err != nil {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	var held report
	jsonDocument(t, "check --json", out, &held)
	if !held.OK || held.Accepted != load.Accepted || len(held.Invariants) < 3 {
		t.Errorf("check --json: %+v\n%s", held, out)
	}
	for _, inv := range held.Invariants {
		if !inv.OK || len(inv.Violations) != 0 || inv.Name == "" {
			t.Errorf("check --json: %+v", inv)
		}
	}

	// An id clients were told was accepted that no service knows breaks one.
	lost := filepath.Join(s.dir, "lost.txt")
	if err := os.WriteFile(lost, []byte("0000000000000000000000000000lost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = execIn(s.dir, "check", "--accepted", lost, "--json").Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("check of a lost id: %v, want exit 1\n%s", err, out)
	}
	var broken report
	jsonDocument(t, "check --json of a lost id", out, &broken)
	names := []string{}
	for _, inv := range broken.Invariants {
		if !inv.OK {
			names = append(names, inv.Name)
			if len(inv.Violations) == 0 || !strings.Contains(strings.Join(inv.Violations, " "), "lost") {
				t.Errorf("a broken invariant without the lost id: %+v", inv)
			}
		}
	}
	if broken.OK || len(names) == 0 {
		t.Errorf("check --json of a lost id: %+v\n%s", broken, out)
	}
}
