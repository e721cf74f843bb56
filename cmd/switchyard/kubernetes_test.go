package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// deploy/kubernetes is what `switchyard deploy kubernetes` renders from the built-in
// platform, file for file (-update rewrites it).
func TestKubernetesManifestsAreCurrent(t *testing.T) {
	files, err := shopEnv().KubernetesFiles(builtinConfig(t), "")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join("..", "..", "deploy", "kubernetes")
	if *update {
		_ = os.RemoveAll(root)
	}
	for name, data := range files {
		path := filepath.Join(root, name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		committed, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(committed, data) {
			t.Errorf("%s is not what switchyard deploy kubernetes renders (%v); run it", path, err)
		}
	}
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			if _, ok := files[filepath.ToSlash(rel)]; !ok {
				t.Errorf("%s is not rendered by switchyard deploy kubernetes: remove it", path)
			}
		}
		return nil
	})
}
