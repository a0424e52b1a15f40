package store

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/ctrpush/ctrpush/internal/testenv"
)

func TestChooseStore(t *testing.T) {
	const defaultSock = "/probe/containerd.sock"
	daemonAt := func(sock string) func(string) bool {
		return func(a string) bool { return a == sock }
	}
	none := daemonAt("")
	cases := []struct {
		name         string
		cfg          Config
		answers      func(string) bool
		kind         Kind
		location     string
		invalidInput bool
	}{
		{"embedded when no daemon answers", Config{FallbackRoot: "/fallback"}, none, KindEmbedded, "/fallback", false},
		{"the default daemon when it answers", Config{FallbackRoot: "/fallback"}, daemonAt(defaultSock), KindContainerd, defaultSock, false},
		{"explicit root wins over the default daemon", Config{Root: "/root", FallbackRoot: "/fallback"}, daemonAt(defaultSock), KindEmbedded, "/root", false},
		{"explicit root wins over an address", Config{Root: "/root", Address: "/other.sock"}, daemonAt(defaultSock), KindEmbedded, "/root", false},
		{"address wins over the default daemon", Config{Address: "/other.sock", FallbackRoot: "/fallback"}, daemonAt(defaultSock), KindContainerd, "/other.sock", false},
		{"address even when nothing answers there", Config{Address: "/other.sock", FallbackRoot: "/fallback"}, none, KindContainerd, "/other.sock", false},
		{"nothing given chooses nothing", Config{}, daemonAt(defaultSock), "", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			probed := false
			answers := func(a string) bool { probed = true; return tc.answers(a) }
			tc.cfg.probe = defaultSock
			kind, location, err := chooseStore(tc.cfg, answers)
			if tc.invalidInput {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("got %s %s, %v; want an invalid argument error", kind, location, err)
				}
				return
			}
			if err != nil || kind != tc.kind || location != tc.location {
				t.Fatalf("got %s %s, %v; want %s %s", kind, location, err, tc.kind, tc.location)
			}
			if probed && (tc.cfg.Root != "" || tc.cfg.Address != "") {
				t.Fatal("probed the default socket although the store was given")
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "live.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	stale := filepath.Join(dir, "stale.sock")
	testenv.StaleSocket(t, stale)
	if !answers(sock) {
		t.Fatal("a listening socket does not answer")
	}
	if answers(stale) {
		t.Fatal("a socket nobody listens on answers")
	}
	if answers(filepath.Join(dir, "absent.sock")) {
		t.Fatal("an absent socket answers")
	}
}

// Without a daemon at the default socket, Open opens the fallback
// embedded store; an explicit root is used as given.
func TestOpenEmbeddedStore(t *testing.T) {
	dir := t.TempDir()
	fallback := filepath.Join(dir, "fallback")
	st, err := Open(t.Context(), Config{FallbackRoot: fallback, Namespace: "ns1", probe: filepath.Join(dir, "absent.sock")})
	if err != nil {
		t.Fatal(err)
	}
	if st.Kind() != KindEmbedded || st.Location() != fallback || st.Namespace() != "ns1" || st.Embedded() == nil || st.ContentStore() == nil {
		t.Fatalf("store %s %s %s", st.Kind(), st.Location(), st.Namespace())
	}
	if _, err := os.Stat(filepath.Join(fallback, "metadata.db")); err != nil {
		t.Fatal(err)
	}
	// Held: a second opener waits StoreTimeout, then says so.
	_, err = Open(t.Context(), Config{Root: fallback, Timeout: 50 * time.Millisecond})
	var iu *InUseError
	if !errors.As(err, &iu) || iu.Root != fallback {
		t.Fatalf("second open: %v, want a InUseError", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	root := filepath.Join(dir, "root")
	st, err = Open(t.Context(), Config{Root: root, Address: filepath.Join(dir, "absent.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Kind() != KindEmbedded || st.Location() != root || st.Namespace() != DefaultNamespace {
		t.Fatalf("store %s %s %s", st.Kind(), st.Location(), st.Namespace())
	}
}

// A bad namespace fails before the store is held.
func TestOpenStoreBadNamespace(t *testing.T) {
	root := t.TempDir()
	if _, err := Open(t.Context(), Config{Root: root, Namespace: "bad namespace!"}); err == nil {
		t.Fatal("opened with a bad namespace")
	}
	if _, err := os.Stat(filepath.Join(root, "metadata.db")); !os.IsNotExist(err) {
		t.Fatalf("the store was created: %v", err)
	}
}
