package integration

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/internal/testimage"
)

// `ctrpush serve --listen unix://PATH` on a regular file exits 1 with an
// error naming the path and what to do, and leaves the file as it was.
func TestServeLeavesAFileAtTheSocketPath(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "ctrpush.sock")
	if err := os.WriteFile(file, []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ctrpush(t, t.TempDir(), "serve", "--listen", "unix://"+file)
	if r.code != 1 || !strings.Contains(r.stderr, file+" is a regular file, not a socket") || !strings.Contains(r.stderr, "listen on another path") {
		t.Fatalf("serve on a regular file: exit %d, %s; want 1 and an error naming the file", r.code, r.stderr)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "not a socket" {
		t.Fatalf("the file at the socket path: %q, %v; want it untouched", b, err)
	}
}

// A damaged metadata database (truncated, or overwritten with garbage) is
// exit 1 with an error naming the file and what to do, never a panic (bolt
// panics on some damage, on open or on a later read). Moving the file away
// as the error says gives a working, empty store.
func TestDamagedMetadataDatabase(t *testing.T) {
	t.Parallel()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 3, LayerSize: 4 << 10, Seed: 81})
	archive := writeArchive(t, img, "oci-tar", "example.com/damaged/app:1.0", "1.0")
	good := t.TempDir()
	mustCtrpush(t, good, "import", archive)
	db, err := os.ReadFile(filepath.Join(good, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Where bolt keeps what (its meta page: the newer of the first two).
	const page = 4096
	le := binary.LittleEndian
	meta := func(p int) (root, freelist, hwm, txid uint64) {
		m := db[p*page+16:]
		return le.Uint64(m[16:]), le.Uint64(m[32:]), le.Uint64(m[40:]), le.Uint64(m[48:])
	}
	root, freelist, hwm, txid := meta(0)
	if r1, f1, h1, t1 := meta(1); t1 > txid {
		root, freelist, hwm = r1, f1, h1
	}
	if root < 3 || hwm*page > uint64(len(db)) {
		t.Fatalf("the metadata database's meta page says root %d, high water %d: not what this test expects", root, hwm)
	}
	garbage := func(b []byte, keep ...uint64) []byte {
		b = append([]byte(nil), b...)
		r := rand.New(rand.NewPCG(81, 82))
	pages:
		for p := uint64(0); p < uint64(len(b)/page); p++ {
			for _, k := range keep {
				if p == k {
					continue pages
				}
			}
			for i := p * page; i < (p+1)*page; i++ {
				b[i] = byte(r.UintN(256))
			}
		}
		return b
	}
	for _, tc := range []struct {
		name string
		db   []byte
	}{
		{"truncated inside its first page", db[:3000]},
		{"truncated after its meta pages", db[:2*page]},
		{"truncated before its root page", db[:root*page]},
		{"garbage", garbage(db)},
		{"garbage after its meta pages", garbage(db, 0, 1)},
		{"garbage in its data pages", garbage(db, 0, 1, freelist)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			path := filepath.Join(root, "metadata.db")
			if err := os.WriteFile(path, tc.db, 0o600); err != nil {
				t.Fatal(err)
			}
			r := ctrpush(t, root, "images")
			if r.code != 1 || strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine") ||
				!strings.Contains(r.stderr, "the metadata database "+path+" is damaged") || !strings.Contains(r.stderr, "mv "+path+" "+path+".damaged") {
				t.Fatalf("images on a store whose database is %s: exit %d\n%s\nwant exit 1 and an error naming the database and what to do", tc.name, r.code, r.stderr)
			}
			if err := os.Rename(path, path+".damaged"); err != nil {
				t.Fatal(err)
			}
			mustCtrpush(t, root, "import", archive)
			if r := mustCtrpush(t, root, "images", "--long"); !strings.Contains(r.stdout, "example.com/damaged/app:1.0") {
				t.Fatalf("images after moving the database away and importing again:\n%s", r.stdout)
			}
		})
	}
}
