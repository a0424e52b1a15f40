package progress

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/auxprogress"
	"github.com/moby/moby/api/types/jsonstream"
)

// JSONInterval bounds how often JSON sends a byte-count message for one
// transfer (the first and the last are always sent).
const JSONInterval = 100 * time.Millisecond

// jsonMessage is one message of Docker's JSON stream: moby's
// jsonstream.Message plus the two deprecated strings older consumers
// still render ("progress" and "error"), as the Docker Engine sends them.
type jsonMessage struct {
	jsonstream.Message
	Bar      string `json:"progress,omitempty"`
	ErrorMsg string `json:"error,omitempty"`
	// Destination names the destination ("host/repo:tag") of a push to
	// several; ctrpush's own field, absent otherwise.
	Destination string `json:"destination,omitempty"`
}

// PushAux is the aux message Docker sends for each pushed tag.
type PushAux struct {
	Tag    string
	Digest string
	Size   int64
}

// JSON writes Docker's JSON message stream, one message per line.
type JSON struct {
	mu    sync.Mutex
	enc   *json.Encoder
	sent  map[string]time.Time
	state map[string]State
	now   func() time.Time
}

// NewJSON returns a renderer writing Docker's JSON stream to w.
func NewJSON(w io.Writer) *JSON {
	return &JSON{enc: json.NewEncoder(w), sent: map[string]time.Time{}, state: map[string]State{}, now: time.Now}
}

func (j *JSON) send(m jsonMessage) { _ = j.enc.Encode(m) }

// sendFor sends m about event e's destination.
func (j *JSON) sendFor(e Event, m jsonMessage) {
	m.Destination = e.Destination
	j.send(m)
}

// status is a message with a status line (and Docker's empty
// progressDetail).
func status(s, id string) jsonMessage {
	return jsonMessage{Message: jsonstream.Message{Status: s, ID: id, Progress: &jsonstream.Progress{}}}
}

// aux is a message carrying v as its aux object.
func aux(v any) jsonMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return jsonMessage{}
	}
	raw := json.RawMessage(b)
	return jsonMessage{Message: jsonstream.Message{Progress: &jsonstream.Progress{}, Aux: &raw}}
}

// Emit renders e.
func (j *JSON) Emit(e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case e.Message != "":
		j.sendFor(e, jsonMessage{Message: jsonstream.Message{Status: e.Message}})
	case e.Result != nil:
		j.sendFor(e, status(e.Result.LineFor(e.Destination), ""))
		j.sendFor(e, aux(PushAux{Tag: e.Result.Tag, Digest: e.Result.Digest, Size: e.Result.Size}))
	case e.Reduced != nil:
		j.sendFor(e, jsonMessage{Message: jsonstream.Message{Status: e.Reduced.Text()}})
		if !e.Reduced.Asked && !e.Reduced.NewIndex {
			// dockerd's fallback: no platform asked, content missing.
			j.send(aux(auxprogress.ManifestPushedInsteadOfIndex{ManifestPushedInsteadOfIndex: true,
				OriginalIndex: e.Reduced.Original, SelectedManifest: e.Reduced.Pushed}))
		}
	case e.Missing != nil:
		j.send(aux(auxprogress.ContentMissing{ContentMissing: true, Desc: e.Missing.Root}))
	case e.Transfer != nil:
		t, k := e.Transfer, key(e)
		if t.State == Failed {
			return // the stream's error message says why the operation failed
		}
		flowing := t.State == Pushing || t.State == Downloading
		prev, seen := j.state[k]
		j.state[k] = t.State
		if flowing && seen && prev == t.State && t.clamped() < t.Total && j.now().Sub(j.sent[k]) < JSONInterval {
			return
		}
		j.sent[k] = j.now()
		m := status(t.Status(), t.ID)
		if flowing {
			m.Progress = &jsonstream.Progress{Current: t.clamped(), Total: t.Total}
			m.Bar = progressBar(t.clamped(), t.Total)
		}
		j.sendFor(e, m)
	}
}

// Fail sends the error as Docker does: errorDetail and error.
func (j *JSON) Fail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.send(jsonMessage{Message: jsonstream.Message{Error: &jsonstream.Error{Message: err.Error()}}, ErrorMsg: err.Error()})
}

// Close does nothing: every message is already out.
func (j *JSON) Close() error { return nil }

// progressBar draws the 50-wide bar and counts of Docker's jsonmessage.
func progressBar(current, total int64) string {
	if total <= 0 {
		return HumanSize(current)
	}
	const width = 50
	n := int(float64(width) * float64(current) / float64(total))
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	return fmt.Sprintf("[%s] %8s/%s", bar, HumanSize(current), HumanSize(total))
}

// PullJSON renders a pull as Docker's JSON stream does: "Pulling from
// REPO" (id TAG) once the pull starts, then per layer "Pulling fs layer",
// "Waiting" (known, not started), "Downloading" with byte counts,
// "Verifying Checksum", "Download complete" and "Pull complete", or
// "Already exists"; manifests and configs are not shown. The caller
// ends the stream with Done (Digest and Status lines) or Fail.
type PullJSON struct {
	j          *JSON
	tag, repo  string
	mu         sync.Mutex
	started    bool
	seen       map[string]bool
	downloaded bool
}

// NewPullJSON returns a renderer of the pull of repo (familiar name,
// "library/alpine") at tag (or digest) writing to w.
func NewPullJSON(w io.Writer, repo, tag string) *PullJSON {
	return &PullJSON{j: NewJSON(w), tag: tag, repo: repo, seen: map[string]bool{}}
}

// Emit renders e.
func (p *PullJSON) Emit(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case e.Message != "":
		if !p.started {
			p.started = true
			p.send(status("Pulling from "+p.repo, p.tag))
		}
	case e.Transfer != nil:
		t := *e.Transfer
		if t.State == Downloading || t.State == Downloaded {
			p.downloaded = true
		}
		if t.Kind != KindLayer {
			return
		}
		switch t.State {
		case Exists:
			p.send(status("Already exists", t.ID))
		case Waiting:
			if !p.seen[t.ID] {
				p.seen[t.ID] = true
				p.send(status("Pulling fs layer", t.ID))
			}
			p.send(status("Waiting", t.ID))
		case Downloading:
			if !p.seen[t.ID] {
				p.seen[t.ID] = true
				p.send(status("Pulling fs layer", t.ID))
			}
			p.j.Emit(Event{Transfer: &t})
		case Verifying:
			p.send(status("Verifying Checksum", t.ID))
		case Downloaded:
			p.send(status("Download complete", t.ID))
			p.send(status("Pull complete", t.ID))
		}
	}
}

func (p *PullJSON) send(m jsonMessage) {
	p.j.mu.Lock()
	defer p.j.mu.Unlock()
	p.j.send(m)
}

// Started reports whether the pull has started ("Pulling from" is out):
// its reference was resolved.
func (p *PullJSON) Started() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

// Downloaded reports whether any blob was fetched from the registry.
func (p *PullJSON) Downloaded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.downloaded
}

// Done ends the stream as Docker does: "Digest: DIGEST", then "Status:
// Downloaded newer image for NAME" or, when upToDate, "Status: Image is up
// to date for NAME".
func (p *PullJSON) Done(digest, name string, upToDate bool) {
	p.send(status("Digest: "+digest, ""))
	if upToDate {
		p.send(status("Status: Image is up to date for "+name, ""))
	} else {
		p.send(status("Status: Downloaded newer image for "+name, ""))
	}
}

// Fail sends the error as Docker does: errorDetail and error.
func (p *PullJSON) Fail(err error) { p.j.Fail(err) }
