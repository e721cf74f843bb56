package deploy_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// dockerfile parses the repository's Dockerfile into its stages' instructions.
func dockerfile(t *testing.T) [][]*parser.Node {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	var stages [][]*parser.Node
	for _, n := range res.AST.Children {
		if strings.EqualFold(n.Value, "from") {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile line %d: %s before any FROM", n.StartLine, n.Original)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], n)
	}
	return stages
}

func args(n *parser.Node) []string {
	var out []string
	for a := n.Next; a != nil; a = a.Next {
		out = append(out, a.Value)
	}
	return out
}

// The Dockerfile's rules: two stages; bases named with an explicit tag, never
// latest; the final stage distroless and static, running as a numeric non-root
// user, with a STOPSIGNAL, an exec-form ENTRYPOINT and no RUN (there is no shell);
// no ADD anywhere.
func TestTheDockerfileFollowsItsRules(t *testing.T) {
	stages := dockerfile(t)
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(stages))
	}
	for _, stage := range stages {
		for _, n := range stage {
			switch strings.ToLower(n.Value) {
			case "from":
				image := args(n)[0]
				if !strings.Contains(image, ":") || strings.HasSuffix(image, ":latest") {
					t.Errorf("line %d: base %s has no explicit tag", n.StartLine, image)
				}
			case "add":
				t.Errorf("line %d: ADD (use COPY)", n.StartLine)
			}
		}
	}
	final := map[string]*parser.Node{}
	for _, n := range stages[1] {
		v := strings.ToLower(n.Value)
		if v == "run" {
			t.Errorf("line %d: RUN in the final stage, which has no shell", n.StartLine)
		}
		final[v] = n
	}
	if from := args(final["from"])[0]; !strings.HasPrefix(from, "gcr.io/distroless/static") {
		t.Errorf("final base %s, want distroless static", from)
	}
	if u := final["user"]; u == nil || strings.HasPrefix(args(u)[0], "0") || strings.HasPrefix(args(u)[0], "root") {
		t.Errorf("the final stage runs as %v, want a numeric non-root user", u)
	}
	if s := final["stopsignal"]; s == nil || args(s)[0] != "SIGTERM" {
		t.Error("no STOPSIGNAL SIGTERM (serve drains on it)")
	}
	if e := final["entrypoint"]; e == nil || !e.Attributes["json"] || args(e)[0] != "/switchyard" {
		t.Error(`the ENTRYPOINT is not the exec form ["/switchyard"]`)
	}
}

// The image's build step, run here as the Dockerfile runs it, makes a static
// binary: no interpreter, no shared library.
func TestTheImageBuildsAStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole binary")
	}
	var build string
	for _, n := range dockerfile(t)[0] {
		if strings.EqualFold(n.Value, "run") && strings.Contains(n.Original, "go build") {
			build = strings.Join(args(n), " ")
		}
	}
	if build == "" {
		t.Fatal("no RUN ... go build in the build stage")
	}
	out := t.TempDir()
	build = strings.ReplaceAll(build, "/out/", out+"/")
	cmd := exec.Command("sh", "-c", build)
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, b)
	}
	f, err := elf.Open(filepath.Join(out, "switchyard"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs %v", libs)
	}
	t.Logf("built with: %s", build)
}
