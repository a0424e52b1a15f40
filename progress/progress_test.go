package progress

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPlainRendersOneLinePerStateChange(t *testing.T) {
	var w, out bytes.Buffer
	p := NewPlain(&w, &out)
	d := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, e := range []Event{
		{Message: "The push refers to repository [example.com/team/app]"},
		{Transfer: &Transfer{ID: ShortID(d), Digest: d, State: Preparing, Total: 2_500_000}},
		{Transfer: &Transfer{ID: ShortID(d), Digest: d, State: Pushing, Total: 2_500_000}},
		{Transfer: &Transfer{ID: ShortID(d), Digest: d, State: Pushing, Current: 1 << 20, Total: 2_500_000}},
		{Transfer: &Transfer{ID: ShortID(d), Digest: d, State: Pushed, Current: 2_500_000, Total: 2_500_000}},
		{Transfer: &Transfer{ID: "aaaaaaaaaaaa", State: Exists}},
		{Transfer: &Transfer{ID: "bbbbbbbbbbbb", State: Mounted, From: "team/base"}},
		{Transfer: &Transfer{ID: "cccccccccccc", State: Failed, Err: errors.New("denied")}},
		{Result: &Result{Repository: "example.com/team/app", Tag: "1.2", Digest: "sha256:feed", Size: 491}},
	} {
		p.Emit(e)
	}
	want := `The push refers to repository [example.com/team/app]
0123456789ab: Preparing
0123456789ab: Pushing 2.5MB
0123456789ab: Pushed
aaaaaaaaaaaa: Layer already exists
bbbbbbbbbbbb: Mounted from team/base
cccccccccccc: Failed: denied
`
	if w.String() != want {
		t.Fatalf("progress:\n%s\nwant:\n%s", w.String(), want)
	}
	if out.String() != "1.2: digest: sha256:feed size: 491\n" {
		t.Fatalf("results %q", out.String())
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 1_048_576: "1.049MB", 33_554_432: "33.55MB", 2_147_483_648: "2.147GB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPlainPrintsByteCountsAtMostEvery5s(t *testing.T) {
	var w bytes.Buffer
	p := NewPlain(&w, &w)
	now := time.Unix(0, 0)
	p.now = func() time.Time { return now }
	emit := func(cur int64) {
		p.Emit(Event{Transfer: &Transfer{ID: "aaaaaaaaaaaa", State: Pushing, Current: cur, Total: 10_000_000}})
	}
	emit(0)
	for i := int64(1); i <= 12; i++ {
		now = now.Add(time.Second)
		emit(i * 500_000)
	}
	want := "aaaaaaaaaaaa: Pushing 10MB\naaaaaaaaaaaa: Pushing 2.5MB/10MB\naaaaaaaaaaaa: Pushing 5MB/10MB\n"
	if w.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", w.String(), want)
	}
}

func TestJSONNeverShowsMoreThanTotal(t *testing.T) {
	var w bytes.Buffer
	j := NewJSON(&w)
	j.Emit(Event{Transfer: &Transfer{ID: "aaaaaaaaaaaa", State: Pushing, Current: 150, Total: 100}})
	if !strings.Contains(w.String(), `"progressDetail":{"current":100,"total":100}`) {
		t.Fatalf("got %s", w.String())
	}
}

// The wait said is the wait taken (to the hundredth of a second).
func TestRetryingStatus(t *testing.T) {
	for in, want := range map[time.Duration]string{
		4500 * time.Millisecond: "Retrying in 4.5 seconds",
		290 * time.Millisecond:  "Retrying in 0.29 seconds",
		time.Second:             "Retrying in 1 second",
		2 * time.Second:         "Retrying in 2 seconds",
		1234 * time.Millisecond: "Retrying in 1.23 seconds",
	} {
		tr := Transfer{State: Retrying, RetryIn: in}
		if s := tr.Status(); s != want {
			t.Errorf("%s: status %q, want %q", in, s, want)
		}
	}
}

// A pull in Docker's JSON stream: the header once, layers only, dockerd's
// words per state, the closing Digest and Status lines.
func TestPullJSONRendersDockersPullStream(t *testing.T) {
	var w bytes.Buffer
	p := NewPullJSON(&w, "team/app", "1.0")
	layer := &Transfer{ID: "aaaaaaaaaaaa", Kind: KindLayer, Total: 10}
	for _, e := range []Event{
		{Message: "Pulling example.com/team/app:1.0"},
		{Transfer: &Transfer{ID: "cccccccccccc", Kind: KindConfig, State: Downloading, Total: 5}},
		{Transfer: &Transfer{ID: "bbbbbbbbbbbb", Kind: KindLayer, State: Exists, Current: 7, Total: 7}},
		{Transfer: &Transfer{ID: layer.ID, Kind: KindLayer, State: Waiting, Total: 10}},
		{Transfer: &Transfer{ID: layer.ID, Kind: KindLayer, State: Downloading, Total: 10}},
		{Transfer: &Transfer{ID: layer.ID, Kind: KindLayer, State: Verifying, Current: 10, Total: 10}},
		{Transfer: &Transfer{ID: layer.ID, Kind: KindLayer, State: Downloaded, Current: 10, Total: 10}},
		{Message: "Pulling example.com/team/app:1.0"},
	} {
		p.Emit(e)
	}
	p.Done("sha256:abc", "example.com/team/app:1.0", !p.Downloaded())
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(w.String()), "\n") {
		var m struct{ ID, Status string }
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got = append(got, m.ID+" "+m.Status)
	}
	want := []string{
		"1.0 Pulling from team/app",
		"bbbbbbbbbbbb Already exists",
		"aaaaaaaaaaaa Pulling fs layer",
		"aaaaaaaaaaaa Waiting",
		"aaaaaaaaaaaa Downloading",
		"aaaaaaaaaaaa Verifying Checksum",
		"aaaaaaaaaaaa Download complete",
		"aaaaaaaaaaaa Pull complete",
		" Digest: sha256:abc",
		" Status: Downloaded newer image for example.com/team/app:1.0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("pull stream:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The JSON stream carries moby's ManifestPushedInsteadOfIndex aux where
// dockerd sends it, its fallback (no platform asked, content missing),
// and only the text line for what was asked by platform or for a new
// index: the docker CLI turns the aux into "Not all multiplatform-content
// is present".
func TestJSONSendsTheInsteadOfIndexAuxOnlyForTheFallback(t *testing.T) {
	for _, tc := range []struct {
		what string
		r    Reduction
		aux  bool
	}{
		{"fallback, no platform asked", Reduction{Reason: "Content of app:1 is missing locally (sha256:…)"}, true},
		{"one platform asked", Reduction{Asked: true}, false},
		{"a new index of the platforms asked", Reduction{Asked: true, NewIndex: true}, false},
	} {
		var b strings.Builder
		NewJSON(&b).Emit(Event{Reduced: &tc.r})
		if got := strings.Contains(b.String(), `"manifestPushedInsteadOfIndex":true`); got != tc.aux {
			t.Errorf("%s: aux sent %v, want %v:\n%s", tc.what, got, tc.aux, b.String())
		}
		if !strings.Contains(b.String(), `"status":`) {
			t.Errorf("%s: no text line:\n%s", tc.what, b.String())
		}
	}
}

// Two destinations: the same digest is two transfers, one per destination;
// plain lines and results name their destination, JSON messages carry it.
func TestEventsOfSeveralDestinations(t *testing.T) {
	d := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	events := []Event{
		{Message: "The push refers to repository [a.example/app]", Destination: "a.example/app:1"},
		{Message: "The push refers to repository [b.example/app]", Destination: "b.example/app:1"},
		{Transfer: &Transfer{ID: ShortID(d), Digest: d, State: Pushing, Total: 10}, Destination: "a.example/app:1"},
		{Transfer: &Transfer{ID: ShortID(d), Digest: d, State: Exists, Total: 10}, Destination: "b.example/app:1"},
		{Transfer: &Transfer{ID: ShortID(d), Digest: d, State: Pushed, Current: 10, Total: 10}, Destination: "a.example/app:1"},
		{Result: &Result{Repository: "a.example/app", Tag: "1", Digest: "sha256:feed", Size: 491}, Destination: "a.example/app:1"},
		{Result: &Result{Repository: "b.example/app", Tag: "1", Digest: "sha256:feed", Size: 491}, Destination: "b.example/app:1"},
	}
	var w, out bytes.Buffer
	p := NewPlain(&w, &out)
	for _, e := range events {
		p.Emit(e)
	}
	want := `[a.example/app:1] The push refers to repository [a.example/app]
[b.example/app:1] The push refers to repository [b.example/app]
[a.example/app:1] 0123456789ab: Pushing 10B
[b.example/app:1] 0123456789ab: Layer already exists
[a.example/app:1] 0123456789ab: Pushed
`
	if w.String() != want {
		t.Fatalf("plain:\n%s\nwant:\n%s", w.String(), want)
	}
	if want := "a.example/app:1: digest: sha256:feed size: 491\nb.example/app:1: digest: sha256:feed size: 491\n"; out.String() != want {
		t.Fatalf("results %q, want %q", out.String(), want)
	}

	var js bytes.Buffer
	j := NewJSON(&js)
	for _, e := range events {
		j.Emit(e)
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	states := map[string][]string{}
	for _, l := range lines {
		var m struct {
			Status, ID, Destination string
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m.Destination == "" {
			t.Fatalf("JSON message without its destination: %s", l)
		}
		if m.ID != "" {
			states[m.Destination] = append(states[m.Destination], m.Status)
		}
	}
	if got := strings.Join(states["a.example/app:1"], ","); got != "Pushing,Pushed" {
		t.Fatalf("a's transfer went %s", got)
	}
	if got := strings.Join(states["b.example/app:1"], ","); got != "Layer already exists" {
		t.Fatalf("b's transfer went %s", got)
	}

	var tw, tout bytes.Buffer
	tty := NewTTY(&tw, &tout, 100)
	for _, e := range events {
		tty.Emit(e)
	}
	if err := tty.Close(); err != nil {
		t.Fatal(err)
	}
	screen := tw.String()
	frame := screen[strings.LastIndex(screen, "\x1b[J")+1:] // the last drawing
	at := 0
	for _, s := range []string{"a.example/app:1 ", "0123456789ab: Pushed", "b.example/app:1 ", "0123456789ab: Layer already exists"} {
		i := strings.Index(frame[at:], s)
		if i < 0 {
			t.Fatalf("TTY: want a block headed a.example/app:1 with its transfer, then b's; %q missing after byte %d of the last frame:\n%q", s, at, frame)
		}
		at += i + len(s)
	}
	if tout.String() != out.String() {
		t.Fatalf("TTY results %q, want %q", tout.String(), out.String())
	}
}

// TestExistsNamesTheKind: docker's "Layer already exists" is for layers;
// a config, manifest or index that is there says what it is.
func TestExistsNamesTheKind(t *testing.T) {
	for kind, want := range map[Kind]string{
		KindLayer:    "Layer already exists",
		"":           "Layer already exists",
		KindConfig:   "Config already exists",
		KindManifest: "Manifest already exists",
		KindIndex:    "Index already exists",
	} {
		tr := &Transfer{ID: "0123456789ab", Kind: kind, State: Exists}
		if got := tr.Status(); got != want {
			t.Errorf("%q: %q, want %q", kind, got, want)
		}
		var b strings.Builder
		NewPlain(&b, &b).Emit(Event{Transfer: tr})
		if !strings.Contains(b.String(), "0123456789ab: "+want+"\n") {
			t.Errorf("plain output for %q: %q", kind, b.String())
		}
	}
}
