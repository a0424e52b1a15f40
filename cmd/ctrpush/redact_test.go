package main

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// What the log filter takes out: secrets known to be in use, wherever
// they appear, and values that read like credentials, in messages and in
// fields of any type; what is no secret stays.
func TestSecretFilter(t *testing.T) {
	f := &secretFilter{}
	f.addCredentials("ci", "kn0wn-s3cret!")
	f.add("tok") // too short to be removed everywhere
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetLevel(logrus.DebugLevel)
	l.AddHook(f)
	l.WithFields(logrus.Fields{
		"body":     "grant_type=password&username=ci&password=p%40ss&refresh_token=r3fresh&scope=repository:a:pull",
		"json":     `{"token":"eyJhbGciOi.x.y","access_token":"eyJhbGciOi.x.y","expires_in":300}`,
		"header":   http.Header{"Authorization": {"Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln"}},
		"error":    errors.New("refused Basic Y2k6a24wd24tczNjcmV0IQ== for ci"),
		"password": "anything",
		"config":   `{"auths":{"r.example.com":{"auth":"dTpw","identitytoken":"idt0ken-value"}}}`,
		"status":   500,
	}).Debugf("helper said kn0wn-s3cret! then kn0wn-s3cret%%21 and \"kn0wn-s3cret!\"; challenge Bearer realm=\"https://auth.example.com/token\"")
	out := buf.String()
	for _, leak := range []string{"kn0wn-s3cret", "p%40ss", "r3fresh", "eyJhbGciOi", "Y2k6a24wd24tczNjcmV0IQ", "anything", "dTpw", "idt0ken-value"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q logged:\n%s", leak, out)
		}
	}
	for _, kept := range []string{"username=ci", "scope=repository:a:pull", "expires_in", `realm=\"https://auth.example.com/token\"`, "status=500", "r.example.com", "for ci"} {
		if !strings.Contains(out, kept) {
			t.Errorf("%q, no secret, not logged:\n%s", kept, out)
		}
	}
	if got := f.redact("stock token"); got != "stock token" {
		t.Errorf("a short secret cut a word: %q", got)
	}
}
