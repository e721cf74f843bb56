package main

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// helpOf is what `switchyard <args> --help` prints, in process.
func helpOf(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	_ = run(context.Background(), append(args, "--help"), func(string) string { return "" }, &out, &errOut)
	return out.String()
}

// placeholders a flag's help may show: what kind of value it takes, not a word
// lifted from the sentence describing it.
var (
	placeholderNouns = map[string]bool{
		"path": true, "file": true, "directory": true, "URL": true, "URI": true, "host:port": true,
		"N": true, "fraction": true, "name": true, "names": true, "id": true, "service": true,
		"level": true, "key=value": true, "token": true, "tag": true, "group": true, "spec": true,
		"request": true, "header": true, "grant": true, "scope": true,
	}
	exampleDuration = regexp.MustCompile(`^[0-9]+(ms|s|m|h)$`)
	alternatives    = regexp.MustCompile(`^[a-z0-9]+(\|[a-z0-9]+)+$`)
	flagHelpLine    = regexp.MustCompile(`(?m)^  -([\w-]+)(?: (\S+))?$`)
	usageLine       = regexp.MustCompile(`(?m)^(?:Usage: | {7})switchyard((?: [a-z][a-z-]*)+)`)
)

// Every command's and subcommand's flags read well in their --help: the
// placeholder names the kind of value (N, file, 30s, text|json), never "second",
// "long" or "int".
func TestEveryFlagPlaceholderReadsAsAValue(t *testing.T) {
	top := helpOf(t)
	_, list, _ := strings.Cut(top, "Commands:\n")
	var lines [][]string
	for _, l := range strings.Split(list, "\n") {
		if f := strings.Fields(l); strings.HasPrefix(l, "  ") && len(f) > 0 {
			lines = append(lines, []string{f[0]})
		}
	}
	flags := 0
	for i := 0; i < len(lines); i++ {
		args := lines[i]
		help := helpOf(t, args...)
		if !strings.Contains(help, "Usage: switchyard "+args[0]) {
			t.Errorf("%v --help printed no usage:\n%s", args, help)
			continue
		}
		if len(args) == 1 && args[0] != "completion" { // and its subcommands, from its usage lines (completion's shell is an argument)
			for _, m := range usageLine.FindAllStringSubmatch(help, -1) {
				sub := strings.Fields(m[1])
				if len(sub) > 1 && sub[0] == args[0] && !slices.ContainsFunc(lines, func(l []string) bool { return slices.Equal(l, sub) }) {
					lines = append(lines, sub)
				}
			}
		}
		for _, m := range flagHelpLine.FindAllStringSubmatch(help, -1) {
			flags++
			name, placeholder := m[1], m[2]
			if placeholder == "" || placeholderNouns[placeholder] || exampleDuration.MatchString(placeholder) || alternatives.MatchString(placeholder) {
				continue
			}
			t.Errorf("switchyard %s: -%s %s: a placeholder should name the value (N, file, 30s, a|b), not %q",
				strings.Join(args, " "), name, placeholder, placeholder)
		}
	}
	if flags < 80 {
		t.Errorf("read only %d flags from %d commands' help", flags, len(lines))
	}
}

// The binary's help, version and a mistyped command, as a shell sees them.
func TestTheBinaryHelpsOnceAndSuggests(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"up", "--help"}, {"help", "up"}} {
		var out, errOut bytes.Buffer
		cmd := exec.Command(binary, args...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil || errOut.Len() > 0 {
			t.Errorf("%v: %v, stderr %q", args, err, errOut.String())
		}
		first := strings.SplitN(out.String(), "\n", 2)[0]
		if first == "" || strings.Count(out.String(), first+"\n") != 1 {
			t.Errorf("%v: want %q once:\n%s", args, first, out.String())
		}
	}
	version, err := exec.Command(binary, "version").Output()
	if err != nil || !strings.HasPrefix(string(version), "switchyard ") {
		t.Fatalf("version: %q, %v", version, err)
	}
	if flag, err := exec.Command(binary, "--version").Output(); err != nil || string(flag) != string(version) {
		t.Errorf("--version printed %q (%v), version %q", flag, err, version)
	}
	var errOut bytes.Buffer
	cmd := exec.Command(binary, "uo")
	cmd.Stderr = &errOut
	err = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(errOut.String(), `unknown command "uo": did you mean "up"?`) {
		t.Errorf("uo: exit %d (%v), stderr %q", code, err, errOut.String())
	}
}
