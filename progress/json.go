package progress

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// JSONInterval bounds how often JSON sends a byte-count message for one
// transfer (the first and the last are always sent).
const JSONInterval = 100 * time.Millisecond

// jsonMessage is one message of Docker's JSON stream, field for field as
// the Docker Engine API sends it (see moby's jsonstream.Message; the
// "progress" string is what older consumers render).
type jsonMessage struct {
	Status   string        `json:"status,omitempty"`
	Progress *jsonProgress `json:"progressDetail,omitempty"`
	Bar      string        `json:"progress,omitempty"`
	ID       string        `json:"id,omitempty"`
	Error    *jsonError    `json:"errorDetail,omitempty"`
	ErrorMsg string        `json:"error,omitempty"`
	Aux      any           `json:"aux,omitempty"`
}

type jsonProgress struct {
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
}

type jsonError struct {
	Message string `json:"message,omitempty"`
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

// Emit renders e.
func (j *JSON) Emit(e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case e.Message != "":
		j.send(jsonMessage{Status: e.Message})
	case e.Result != nil:
		j.send(jsonMessage{Status: e.Result.Line(), Progress: &jsonProgress{}})
		j.send(jsonMessage{Progress: &jsonProgress{}, Aux: PushAux{Tag: e.Result.Tag, Digest: e.Result.Digest, Size: e.Result.Size}})
	case e.Aux != nil:
		j.send(jsonMessage{Progress: &jsonProgress{}, Aux: e.Aux})
	case e.Transfer != nil:
		t := e.Transfer
		if t.State == Failed {
			return // the stream's error message says why the operation failed
		}
		flowing := t.State == Pushing || t.State == Downloading
		prev, seen := j.state[t.ID]
		j.state[t.ID] = t.State
		if flowing && seen && prev == t.State && t.clamped() < t.Total && j.now().Sub(j.sent[t.ID]) < JSONInterval {
			return
		}
		j.sent[t.ID] = j.now()
		m := jsonMessage{Status: t.Status(), ID: t.ID, Progress: &jsonProgress{}}
		if flowing {
			m.Progress = &jsonProgress{Current: t.clamped(), Total: t.Total}
			m.Bar = progressBar(t.clamped(), t.Total)
		}
		j.send(m)
	}
}

// Fail sends the error as Docker does: errorDetail and error.
func (j *JSON) Fail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.send(jsonMessage{Error: &jsonError{Message: err.Error()}, ErrorMsg: err.Error()})
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
