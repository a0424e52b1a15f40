package main

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

// redacted stands in for a secret in what is logged.
const redacted = "[redacted]"

// secretFilter takes credentials out of every log entry before it is
// written (containerd/log is logrus): --debug shows what containerd's
// code logs as well, such as the body of a token endpoint's error answer,
// which may echo the form it was sent, password included. It removes the
// secrets known to be in use (as given, URL-encoded, JSON-quoted, and as
// HTTP basic credentials) and anything that reads like one: form or query
// values and JSON members named password, token, access_token,
// refresh_token, identitytoken and the like, Bearer and Basic
// credentials, fields with such names.
type secretFilter struct {
	mu    sync.RWMutex
	known []string
}

// secrets is the process's filter, installed on the logger by run.
var secrets = &secretFilter{}

var installSecretsOnce sync.Once

// installSecretFilter puts secrets on the logger (once per process).
func installSecretFilter() {
	installSecretsOnce.Do(func() { log.L.Logger.AddHook(secrets) })
}

// minKnownSecret is the shortest secret removed wherever it appears:
// shorter ones would cut every word that contains them (the patterns still
// catch them where they read like a secret).
const minKnownSecret = 4

// add makes secret (and its URL-encoded and JSON-quoted forms) known.
func (f *secretFilter) add(secret string) {
	if len(secret) < minKnownSecret {
		return
	}
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret), strings.Trim(strconv.Quote(secret), `"`)}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range forms {
		if !contains(f.known, s) {
			f.known = append(f.known, s)
		}
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// addCredentials makes a username's secret known, and the two as HTTP
// basic credentials.
func (f *secretFilter) addCredentials(username, secret string) {
	if secret == "" {
		return
	}
	f.add(secret)
	f.add(base64.StdEncoding.EncodeToString([]byte(username + ":" + secret)))
}

// secretWords are names whose values are secrets, in forms, queries,
// JSON and log fields.
const secretWords = `password|passwd|secret|client_secret|token|access_token|refresh_token|id_token|identitytoken|identity_token|registrytoken|registry_token|auth|authorization`

var (
	// name=value in a form or a query (value up to &, space or a quote).
	formSecret = regexp.MustCompile(`(?i)\b(` + secretWords + `)=[^&\s"'\\,;]+`)
	// "name": "value" in JSON, as it is or quoted in a string.
	jsonSecret = regexp.MustCompile(`(?i)(\\?"(?:` + secretWords + `)\\?"\s*:\s*\\?")[^"\\]+`)
	// An Authorization header's credentials.
	schemeSecret = regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}`)
	secretField  = regexp.MustCompile(`(?i)^(?:` + secretWords + `)$`)
)

// redact returns s without the secrets it carries.
func (f *secretFilter) redact(s string) string {
	f.mu.RLock()
	for _, k := range f.known {
		s = strings.ReplaceAll(s, k, redacted)
	}
	f.mu.RUnlock()
	s = formSecret.ReplaceAllString(s, "${1}="+redacted)
	s = jsonSecret.ReplaceAllString(s, "${1}"+redacted)
	return schemeSecret.ReplaceAllString(s, "${1}${2}"+redacted)
}

// Levels says the filter sees every entry.
func (f *secretFilter) Levels() []logrus.Level { return logrus.AllLevels }

// Fire redacts an entry's message and fields in place (logrus hands each
// hook its own copy of the fields).
func (f *secretFilter) Fire(e *logrus.Entry) error {
	e.Message = f.redact(e.Message)
	for k, v := range e.Data {
		if secretField.MatchString(k) {
			e.Data[k] = redacted
			continue
		}
		switch v := v.(type) {
		case nil, bool, int, int64, uint64, float64, time.Duration, time.Time:
		case string:
			if r := f.redact(v); r != v {
				e.Data[k] = r
			}
		default: // errors, headers, URLs, anything printed with %v
			s := fmt.Sprint(v)
			if r := f.redact(s); r != s {
				e.Data[k] = r
			}
		}
	}
	return nil
}
