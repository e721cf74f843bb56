package switchyard_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxTracked is the largest file the repository may hold: build outputs and data
// dumps belong in .gitignore, not in every clone.
const maxTracked = 1 << 20

// trackedFileViolations checks files (path → content) for what a repository must
// not carry: a file over maxTracked, or an executable binary (ELF, Mach-O, PE).
func trackedFileViolations(files map[string][]byte) []string {
	var out []string
	for path, b := range files {
		switch {
		case len(b) > maxTracked:
			out = append(out, fmt.Sprintf("%s is %d bytes, over %d: keep it out of the repository", path, len(b), maxTracked))
		case binary(b):
			out = append(out, fmt.Sprintf("%s is an executable binary: build outputs belong in .gitignore", path))
		}
	}
	return out
}

func binary(b []byte) bool {
	for _, magic := range [][]byte{{0x7f, 'E', 'L', 'F'}, {0xcf, 0xfa, 0xed, 0xfe}, {0xce, 0xfa, 0xed, 0xfe}, {0xca, 0xfe, 0xba, 0xbe}, []byte("MZ")} {
		if bytes.HasPrefix(b, magic) {
			return true
		}
	}
	return false
}

// tracked lists the repository's files: git's index when this is a clone, else
// the tree (without what .gitignore keeps out).
func tracked(t *testing.T) []string {
	t.Helper()
	if out, err := exec.Command("git", "ls-files", "-z").Output(); err == nil && len(out) > 0 {
		return strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	}
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == ".switchyard" || path == "bench/out" || path == ".ci/artifacts"):
			return filepath.SkipDir
		case !d.IsDir():
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestTheRepositoryHoldsNoBinariesAndNoHugeFiles(t *testing.T) {
	t.Parallel()
	files := map[string][]byte{}
	for _, path := range tracked(t) {
		b, err := os.ReadFile(path)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the working tree
			}
			t.Fatal(err)
		}
		files[path] = b
	}
	if len(files) < 100 {
		t.Fatalf("found only %d files", len(files))
	}
	for _, v := range trackedFileViolations(files) {
		t.Error(v)
	}
}

// The rule fires on a stale binary and on a large file, and passes scripts and text.
func TestTheRepositoryRuleCatchesBinariesAndHugeFiles(t *testing.T) {
	t.Parallel()
	bad := map[string][]byte{
		"cmd/switchyard/switchyard": append([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1}, make([]byte, 100)...),
		"dump.json":                 bytes.Repeat([]byte("x"), maxTracked+1),
	}
	if v := trackedFileViolations(bad); len(v) != 2 {
		t.Errorf("%d violations, want 2: %v", len(v), v)
	}
	good := map[string][]byte{".ci/run": []byte("#!/usr/bin/env bash\n"), "README.md": []byte("# Switchyard\n")}
	if v := trackedFileViolations(good); len(v) != 0 {
		t.Errorf("scripts and text reported: %v", v)
	}
}
