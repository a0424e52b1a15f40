package imageservice

import (
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/platforms"
	bolt "go.etcd.io/bbolt"

	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/store"
)

// countingTx counts the write transactions of the embedded store's
// metadata database.
type countingTx struct {
	metadata.Transactor
	updates *atomic.Int64
}

func (c countingTx) Update(fn func(*bolt.Tx) error) error {
	c.updates.Add(1)
	return c.Transactor.Update(fn)
}

// A pull into the embedded store commits the blobs that arrive together
// in one metadata transaction (one write and sync for all), not one each:
// alone a blob takes three write transactions (its ingest opened, its
// commit, its label), with batches but no grouping two; 40 layers pulled
// 8 at a time take fewer than that (about one per blob here), and every
// blob is there.
func TestPullGroupsItsCommits(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 40, LayerSize: 64 << 10}, "group/a:1")
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	pull := func(batched bool) int64 {
		var updates atomic.Int64
		st, err := store.OpenEmbedded(t.Context(), t.TempDir(), store.WithFaults(nil, func(tx metadata.Transactor) metadata.Transactor {
			return countingTx{Transactor: tx, updates: &updates}
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		opts := []Option{WithNamespace("test"), WithHostPlatform(platforms.MustParse("linux/amd64"))}
		if batched {
			opts = append(opts, WithBatch(st.Batch))
		}
		svc, err := New(st.ContentStore(), st.ImageStore(), st.LeaseManager(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		before := updates.Load()
		if _, err := svc.Pull(f.ctx, f.name); err != nil {
			t.Fatal(err)
		}
		for _, d := range f.img.Digests() {
			if _, err := st.ContentStore().Info(f.ctx, d); err != nil {
				t.Fatalf("pulled store lacks %s: %v", d, err)
			}
		}
		return updates.Load() - before
	}
	blobs := int64(len(f.img.Digests()))
	alone, grouped := pull(false), pull(true)
	if alone < 2*blobs {
		t.Fatalf("without batches the pull took %d write transactions for %d blobs: the count does not see them", alone, blobs)
	}
	if grouped >= 2*blobs {
		t.Fatalf("with batches the pull took %d write transactions for %d blobs (%d without): its commits were not grouped", grouped, blobs, alone)
	}
	t.Logf("%d blobs: %d write transactions alone, %d grouped", blobs, alone, grouped)
}
