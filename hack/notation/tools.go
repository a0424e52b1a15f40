//go:build tools

// Package tools pins the notation CLI that make test builds to verify the
// notation signatures ctrpush pushes. The module proxy refuses
// `go install github.com/notaryproject/notation/cmd/notation@v1.3.2` (it
// lists no versions of that module, which go install asks for), so the
// Makefile builds it from this module instead.
package tools

import _ "github.com/notaryproject/notation/cmd/notation"
