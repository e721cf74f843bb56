package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/cli"
)

// toolkit is a binary with the toolkit's commands and one of its own.
func toolkit() cli.App {
	return cli.App{Name: "rides", Commands: []cli.Command{{Name: "grant", Summary: "give a user a role",
		Usage: "grant <email> <role>", Run: func(context.Context, *cli.Env, []string) error { return nil }}}}
}

func runArgs(t *testing.T, app cli.App, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Run(context.Background(), app, args, func(string) string { return "" }, &out, &errOut)
	code = cli.ExitCode(err)
	if code != 0 { // as Main prints it
		errOut.WriteString(err.Error())
	}
	return code, out.String(), errOut.String()
}

// commandNames reads the command list the top-level help prints.
func commandNames(t *testing.T, app cli.App) []string {
	t.Helper()
	_, out, _ := runArgs(t, app, "--help")
	_, list, ok := strings.Cut(out, "Commands:\n")
	if !ok {
		t.Fatalf("--help lists no commands:\n%s", out)
	}
	var names []string
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); strings.HasPrefix(line, "  ") && len(f) > 0 {
			names = append(names, f[0])
		}
	}
	if len(names) < 10 {
		t.Fatalf("--help lists %d commands: %v", len(names), names)
	}
	return names
}

func TestVersionFlagsPrintWhatVersionPrints(t *testing.T) {
	_, want, _ := runArgs(t, toolkit(), "version")
	if !strings.HasPrefix(want, "rides ") || !strings.Contains(want, runtime.Version()) {
		t.Fatalf("version printed %q", want)
	}
	for _, flag := range []string{"--version", "-version", "-v"} {
		code, out, errOut := runArgs(t, toolkit(), flag)
		if code != 0 || out != want || errOut != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 0 and %q", flag, code, out, errOut, want)
		}
	}
}

func TestVersionJSONIsOneObject(t *testing.T) {
	code, out, _ := runArgs(t, toolkit(), "version", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var v map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if dec.More() {
		t.Errorf("more than one document:\n%s", out)
	}
	if v["name"] != "rides" || v["go"] != runtime.Version() || v["version"] == "" || v["version"] == nil {
		t.Errorf("got %v", v)
	}
	if code, _, errOut := runArgs(t, toolkit(), "version", "--jsn"); code != 2 || !strings.Contains(errOut, "-jsn") {
		t.Errorf("a mistyped flag: exit %d, %q", code, errOut)
	}
}

// Every way of asking for help prints its text once, to stdout, and exits 0.
func TestHelpPrintsOnceToStdout(t *testing.T) {
	cases := [][]string{{"--help"}, {"-h"}, {"help"}, {"up", "--help"}, {"help", "up"}, {"up", "-h"},
		{"deploy", "--help"}, {"faults", "--help"}, {"certs", "--help"}, {"help", "deploy"}, {"completion", "--help"}}
	for _, args := range cases {
		code, out, errOut := runArgs(t, toolkit(), args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
		first := strings.SplitN(out, "\n", 2)[0]
		if first == "" || strings.Count(out, first+"\n") != 1 {
			t.Errorf("%v: want its first line %q once, got:\n%s", args, first, out)
		}
	}
}

func TestAMistypedCommandGetsASuggestion(t *testing.T) {
	cases := map[string]string{"uo": "up", "chek": "check", "vresion": "version", "dagram": "diagram", "grnat": "grant"}
	for typed, want := range cases {
		code, out, errOut := runArgs(t, toolkit(), typed)
		if code != 2 || out != "" || !strings.Contains(errOut, `unknown command "`+typed+`": did you mean "`+want+`"?`) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", typed, code, out, errOut)
		}
	}
	// Nothing is near enough: the list, and no guess.
	code, _, errOut := runArgs(t, toolkit(), "deploy-everything")
	if code != 2 || strings.Contains(errOut, "did you mean") || !strings.Contains(errOut, "Commands:") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestCompletionScriptsNameEveryCommand(t *testing.T) {
	names := commandNames(t, toolkit())
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, script, errOut := runArgs(t, toolkit(), "completion", shell)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", shell, code, errOut)
		}
		for _, name := range names {
			if !regexp.MustCompile(`(^|[\s'(])` + name + `([\s):]|$)`).MatchString(script) {
				t.Errorf("the %s script does not name %s", shell, name)
			}
		}
		for _, flag := range []string{"--services", "--drain-delay", "-n"} { // up's, serve's, logs'
			if !strings.Contains(script, strings.TrimLeft(flag, "-")) {
				t.Errorf("the %s script lacks %s", shell, flag)
			}
		}
	}
	if code, _, errOut := runArgs(t, toolkit(), "completion", "tcsh"); code != 2 || !strings.Contains(errOut, `no shell "tcsh"`) {
		t.Errorf("an unknown shell: exit %d, %q", code, errOut)
	}
}

func script(t *testing.T, shell string) string {
	t.Helper()
	_, out, _ := runArgs(t, toolkit(), "completion", shell)
	path := filepath.Join(t.TempDir(), "rides."+shell)
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func shellOrSkip(t *testing.T, shell string) string {
	t.Helper()
	path, err := exec.LookPath(shell)
	if err != nil {
		t.Skipf("no %s on this machine (%v): its completion script's syntax is not checked", shell, err)
	}
	return path
}

// The bash script parses, and completes commands, subcommands and flags.
func TestTheBashCompletionCompletes(t *testing.T) {
	bash := shellOrSkip(t, "bash")
	path := script(t, "bash")
	if out, err := exec.Command(bash, "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	for line, want := range map[string]string{
		"rides u":          "up",
		"rides deploy k":   "kubernetes",
		"rides up --s":     "--services",
		"rides help ver":   "verify version",
		"rides completion": "completion",
	} {
		words := strings.Fields(line)
		probe := `source "$1"; COMP_WORDS=(` + strings.Join(words, " ") + `); COMP_CWORD=` +
			string(rune('0'+len(words)-1)) + `; _rides_complete; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, "-c", probe, "bash", path).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("%q completes to %q (%v), want %q", line, got, err, want)
		}
	}
}

func TestTheZshCompletionParses(t *testing.T) {
	zsh := shellOrSkip(t, "zsh")
	if out, err := exec.Command(zsh, "-n", script(t, "zsh")).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
}

func TestTheFishCompletionParses(t *testing.T) {
	fish := shellOrSkip(t, "fish")
	path := script(t, "fish")
	if out, err := exec.Command(fish, "--no-execute", path).CombinedOutput(); err != nil {
		t.Fatalf("fish --no-execute: %v\n%s", err, out)
	}
	// And fish itself offers the commands from it.
	out, err := exec.Command(fish, "--no-config", "-c", "source $argv[1]; complete -C 'rides ver'", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verify") || !strings.Contains(string(out), "version") {
		t.Errorf("fish completes \"rides ver\" to %q (%v)", out, err)
	}
}
