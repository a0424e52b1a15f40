package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/registry"
)

// TestDocumentedDefaultsMatchTheCode holds the defaults README.md and
// docs/BEHAVIOUR.md state to the constants the code uses: each phrase is
// built from its constant and must appear in the file (whitespace, line
// breaks included, counts as one space). A failure means the docs or the
// constant changed: make them agree again. Unexported constants are read
// from their package's source.
func TestDocumentedDefaultsMatchTheCode(t *testing.T) {
	near := sourceConst(t, "../../imageservice", "nearUploads")
	nearRT := time.Duration(sourceConst(t, "../../imageservice", "nearRoundTrip"))
	pulls := sourceConst(t, "../../imageservice", "pullConcurrencyNear")
	predialIdle := time.Duration(sourceConst(t, "../../internal/registry", "predialIdle"))
	retry := imageservice.DefaultRetryPolicy
	ms := func(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

	docs := map[string][]string{
		"../../README.md": {
			fmt.Sprintf("up to %d uploads and %s of blobs in flight to a registry across a link",
				imageservice.DefaultMaxConcurrentUploads, sizeText(imageservice.DefaultMaxBytesInFlight)),
			fmt.Sprintf("%d to one close by — the first round trip under %s", near, ms(nearRT)),
			fmt.Sprintf("`--max-retries` times (default %d)", imageservice.DefaultMaxRetries),
			fmt.Sprintf("The answer to a blob commit (an upload's last request, a mount) is waited for %g minutes", imageservice.DefaultResponseHeaderTimeout.Minutes()),
			fmt.Sprintf("no progress for %g s (no byte taken", registry.DefaultIdleTimeout.Seconds()),
		},
		"../../docs/BEHAVIOUR.md": {
			fmt.Sprintf("up to %d blobs and %s of blobs are in flight to a registry across a link",
				imageservice.DefaultMaxConcurrentUploads, sizeText(imageservice.DefaultMaxBytesInFlight)),
			fmt.Sprintf("%d to a registry close by (the first round trip under %s)", near, ms(nearRT)),
			fmt.Sprintf("longer than a registry close by answers (%s)", ms(nearRT)),
			fmt.Sprintf("one not used within %g s is closed", predialIdle.Seconds()),
			fmt.Sprintf("(the manifest resolved in under %s) pulls fetch %d at a time", ms(nearRT), pulls),
			fmt.Sprintf("A chunk is at least %s", sizeText(imageservice.MinChunkSize)),
			fmt.Sprintf("%s then halved until one is taken (down to %s)", sizeText(registry.DefaultChunkSize), sizeText(registry.MinChunkSize)),
			fmt.Sprintf("`--max-retries` times (default %d)", imageservice.DefaultMaxRetries),
			fmt.Sprintf("waiting %g s doubling up to %g s", retry.Backoff.Seconds(), retry.MaxBackoff.Seconds()),
			fmt.Sprintf("honoured up to %g minutes", retry.RetryAfterCap.Minutes()),
			fmt.Sprintf("A registry may take up to %g minutes to answer", imageservice.DefaultResponseHeaderTimeout.Minutes()),
			fmt.Sprintf("%g s of no progress (`RetryPolicy.IdleTimeout`", registry.DefaultIdleTimeout.Seconds()),
			fmt.Sprintf("| a manifest or index | %s", sizeText(registry.MaxManifestSize)),
			fmt.Sprintf("| an image config | %s", sizeText(registry.MaxConfigSize)),
		},
	}
	for path, phrases := range docs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(b)), " ")
		for _, p := range phrases {
			if !strings.Contains(text, p) {
				t.Errorf("%s does not say %q: the docs and the code's default disagree", filepath.Base(path), p)
			}
		}
	}
}

func TestSizeText(t *testing.T) {
	for n, want := range map[int64]string{
		512 << 20: "512 MiB", 64 << 10: "64 KiB", 4 << 20: "4 MiB", 2 << 30: "2 GiB",
		1536: "1536 bytes", 100: "100 bytes", 0: "0 bytes",
	} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}

// sourceConst is the value of the package-level constant name declared in
// the Go files (tests excluded) of dir: an integer, possibly shifted or
// multiplied, or a multiple of a time unit (in nanoseconds).
func sourceConst(t *testing.T, dir, name string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if n.Name != name || i >= len(vs.Values) {
						continue
					}
					v, ok := evalConst(vs.Values[i])
					if !ok {
						t.Fatalf("%s in %s: %s is not a form this test reads; extend evalConst", name, f, nodeType(vs.Values[i]))
					}
					return v
				}
			}
		}
	}
	t.Fatalf("no constant %s in %s: it was renamed or moved; update this test", name, dir)
	return 0
}

// evalConst evaluates the few constant forms sourceConst reads.
func evalConst(e ast.Expr) (int64, bool) {
	switch e := e.(type) {
	case *ast.ParenExpr:
		return evalConst(e.X)
	case *ast.BasicLit:
		if e.Kind != token.INT {
			return 0, false
		}
		v, err := strconv.ParseInt(e.Value, 0, 64)
		return v, err == nil
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok && x.Name == "time" {
			unit, ok := map[string]time.Duration{"Nanosecond": time.Nanosecond, "Microsecond": time.Microsecond,
				"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}[e.Sel.Name]
			return int64(unit), ok
		}
	case *ast.BinaryExpr:
		x, okx := evalConst(e.X)
		y, oky := evalConst(e.Y)
		if !okx || !oky {
			return 0, false
		}
		switch e.Op {
		case token.MUL:
			return x * y, true
		case token.SHL:
			return x << y, true
		}
	}
	return 0, false
}

// nodeType names an expression's node type, for the failure message.
func nodeType(e ast.Expr) string { return fmt.Sprintf("%T", e) }
