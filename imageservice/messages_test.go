package imageservice

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// apiName is a Go API identifier a user of the CLI or of serve cannot act
// on: an option (WithBaseName) or a configuration field (HostsConfig.…).
var apiName = regexp.MustCompile(`\bWith[A-Z]\w+|\b(HostsConfig|StoreConfig|RetryPolicy|TransferOption)\b`)

// The library's messages state facts; each front end adds its own hint (a
// flag for the CLI, dockerd's words for serve). No string of the library's
// code names a Go API identifier, but an OptionError's, which is about an
// option of this package by definition.
func TestLibraryMessagesNameNoAPI(t *testing.T) {
	var files []string
	for _, dir := range []string{".", "../internal/registry", "../mount", "../dockercreds", "../dockerchanges", "../progress", "../store"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(file, func(n ast.Node) bool {
			if cl, ok := n.(*ast.CompositeLit); ok {
				if id, ok := cl.Type.(*ast.Ident); ok && id.Name == "OptionError" {
					return false
				}
			}
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err == nil && apiName.MatchString(s) {
				t.Errorf("%s: the message %q names a Go API identifier (%s): state the fact, and let the front ends add the hint", fset.Position(lit.Pos()), s, apiName.FindString(s))
			}
			return true
		})
	}
	if checked < 20 {
		t.Fatalf("only %d source files read: the test read the wrong directories", checked)
	}
}
