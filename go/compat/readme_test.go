package diffid_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestReadmeCompiles builds every ```go block of ../README.md, each a complete program, in a
// scratch module that uses this checkout: the README's usage compiles as written. It lives
// in this module because one block is the containers/image code an importer replaces.
func TestReadmeCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) < 3 {
		t.Fatalf("only %d Go blocks in README.md", len(blocks))
	}
	here, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	gosum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// This module's requirements (containers/image for the block that shows the code diffid
	// replaces), its replace made absolute.
	mod := strings.Replace(string(gomod), "module diffid.dev/go/diffid/compat", "module readme.test", 1)
	mod = strings.Replace(mod, "replace diffid.dev/go/diffid => ../", "replace diffid.dev/go/diffid => "+here, 1)
	if !strings.Contains(mod, "module readme.test") || !strings.Contains(mod, "=> "+here) {
		t.Fatalf("go.mod is not shaped as this test expects:\n%s", mod)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), gosum, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		sub := filepath.Join(dir, "block"+string(rune('a'+i)))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "main.go"), b[1], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", t.TempDir()+"/", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("README.md's Go blocks do not build: %v\n%s", err, out)
	}
	t.Logf("README.md: %d Go programs build", len(blocks))
}
