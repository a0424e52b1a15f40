package store

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Two users of one database file (bolt locks it per open file, so two in
// one process stand for two processes): the database is closed between
// bursts, and one busy with back-to-back transactions lets a waiting one
// in instead of starving it.
func TestSharedBoltLetsAWaiterIn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "metadata.db")
	busy := newSharedBolt(path, dir, 10*time.Second)
	other := newSharedBolt(path, dir, 10*time.Second)
	defer busy.Close()
	defer other.Close()
	put := func(s *sharedBolt, key string) error {
		return s.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte(key), []byte("v"))
		})
	}
	if err := put(busy, "first"); err != nil {
		t.Fatal(err)
	}
	// Idle: closed after the linger, so the other opens it at once.
	time.Sleep(2 * boltLinger)
	start := time.Now()
	if err := put(other, "idle"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("an idle store kept the other waiting %s", took)
	}
	time.Sleep(2 * boltLinger)

	// Busy: back-to-back transactions for 5 s; the other gets in long
	// before they end.
	var stop atomic.Bool
	done := make(chan int)
	go func() {
		n := 0
		for !stop.Load() {
			if err := busy.View(func(*bolt.Tx) error { time.Sleep(time.Millisecond); return nil }); err != nil {
				t.Error(err)
				break
			}
			n++
		}
		done <- n
	}()
	time.Sleep(100 * time.Millisecond)
	start = time.Now()
	err := put(other, "busy")
	took := time.Since(start)
	time.AfterFunc(5*time.Second-took, func() { stop.Store(true) })
	n := <-done
	if err != nil {
		t.Fatal(err)
	}
	if took > 2500*time.Millisecond || n == 0 {
		t.Fatalf("the waiter got in after %s (the busy one ran %d transactions)", took, n)
	}
	if ms, _ := filepath.Glob(path + ".waiting.*"); len(ms) != 0 {
		t.Fatalf("waiting markers left: %v", ms)
	}
}
