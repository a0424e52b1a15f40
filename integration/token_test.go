package integration

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// tokenServer is a small Docker token server: basic auth in, an ES256 JWT
// (x5c header, the certificate the registry trusts) out, granting what was
// asked. It records the scopes asked for.
type tokenServer struct {
	url            string
	key            *ecdsa.PrivateKey
	certDER        []byte
	user, password string
	// lifetime, when set, makes tokens expire that long after they are
	// issued (while expires_in still says 300 s, so only the registry's
	// 401 tells the client); distribution allows 60 s of leeway past exp.
	lifetime time.Duration

	mu     sync.Mutex
	scopes []string
	issued int
}

func startTokenServer(t *testing.T, certDir, user, password string) *tokenServer {
	t.Helper()
	signer := issue(t, "ctrpush token signer", nil, false, false)
	ts := &tokenServer{key: signer.Key, certDER: signer.Cert.Raw, user: user, password: password}
	writeFile(t, filepath.Join(certDir, "token-root.pem"), signer.PEM)
	srv := httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(srv.Close)
	ts.url = srv.URL + "/token"
	return ts
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	u, p, ok := r.BasicAuth()
	if !ok || u != ts.user || p != ts.password {
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	type access struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
	var granted []access
	for _, scope := range q["scope"] {
		ts.mu.Lock()
		ts.scopes = append(ts.scopes, scope)
		ts.mu.Unlock()
		parts := strings.Split(scope, ":")
		if len(parts) != 3 {
			continue
		}
		granted = append(granted, access{Type: parts[0], Name: parts[1], Actions: strings.Split(parts[2], ",")})
	}
	now := time.Now()
	exp := now.Add(5 * time.Minute)
	if ts.lifetime > 0 {
		exp = now.Add(ts.lifetime - 60*time.Second)
	}
	ts.mu.Lock()
	ts.issued++
	ts.mu.Unlock()
	claims := map[string]any{
		"iss": "ctrpush-test-issuer", "sub": u, "aud": q.Get("service"),
		"exp": exp.Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": fmt.Sprint(now.UnixNano()), "access": granted,
	}
	header := map[string]any{"alg": "ES256", "typ": "JWT", "x5c": []string{base64.StdEncoding.EncodeToString(ts.certDER)}}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(header) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	rr, ss, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sig := make([]byte, 64)
	rr.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	token := signing + "." + base64.RawURLEncoding.EncodeToString(sig)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": token, "access_token": token, "expires_in": 300})
}

func (ts *tokenServer) asked() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.scopes...)
}

// Token auth: a registry that wants bearer tokens from a token server;
// ctrpush gets them with the credentials from config.json, and a push to a
// second repository asks for pull access to the mount source and mounts.
func TestTokenAuthAndCrossRepositoryMount(t *testing.T) {
	t.Parallel()
	const user, secret = "tokenuser", "t0ken-Secret"
	certDir := t.TempDir()
	ts := startTokenServer(t, certDir, user, secret)
	reg := registrytest.Start(t, "-token-realm", ts.url, "-token-rootcerts", filepath.Join(certDir, "token-root.pem"))
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, Seed: 51})
	name := reg.Host + "/tok/a:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))

	dc := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))
	writeFile(t, filepath.Join(dc, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, auth)))
	env := []string{"DOCKER_CONFIG=" + dc}

	// Without credentials the token server refuses: a clear failure.
	if r := ctrpushEnv(t, []string{"DOCKER_CONFIG=" + t.TempDir()}, root, "push", name); r.code != 1 {
		t.Fatalf("push without credentials: exit %d, %s", r.code, r.stderr)
	}

	var outputs []string
	for _, dest := range []string{name, reg.Host + "/tok/b:1.0"} {
		r := ctrpushEnv(t, env, root, "push", "--progress", "plain", name, dest)
		outputs = append(outputs, r.stdout, r.stderr)
		if r.code != 0 {
			t.Fatalf("push to %s: exit %d, %s", dest, r.code, r.stderr)
		}
		if strings.HasSuffix(dest, "tok/b:1.0") && !strings.Contains(r.stderr, "Mounted from tok/a") {
			t.Fatalf("second push did not mount:\n%s", r.stderr)
		}
	}
	pullSource := false
	for _, s := range ts.asked() {
		if s == "repository:tok/a:pull" {
			pullSource = true
		}
	}
	if !pullSource {
		t.Fatalf("no token asked for pull access to the mount source; scopes asked: %q", ts.asked())
	}
	mounts := 0
	for _, r := range reg.Requests(t) {
		q, _ := url.ParseQuery(r.Query)
		if strings.HasPrefix(r.Path, "/v2/tok/b/blobs/uploads/") && q.Get("from") == "tok/a" && r.Status == http.StatusCreated {
			mounts++
		}
	}
	if mounts != 3 { // 2 layers and the config
		t.Fatalf("%d blobs mounted into tok/b, want 3", mounts)
	}
	// A "registrytoken" in config.json is sent as it is.
	req, _ := http.NewRequest(http.MethodGet, ts.url+"?service=ctrpush-test&scope=repository:tok/c:pull,push", nil)
	req.SetBasicAuth(user, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	rtDir := t.TempDir()
	writeFile(t, filepath.Join(rtDir, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"registrytoken":%q}}}`, reg.Host, tok.Token)))
	before := len(ts.asked())
	r := ctrpushEnv(t, []string{"DOCKER_CONFIG=" + rtDir}, root, "push", name, reg.Host+"/tok/c:1.0")
	outputs = append(outputs, r.stdout, r.stderr)
	if r.code != 0 {
		t.Fatalf("push with a registry token: exit %d, %s", r.code, r.stderr)
	}
	if len(ts.asked()) != before {
		t.Fatalf("the push with a registry token went to the token server: %q", ts.asked()[before:])
	}
	put := false
	for _, r := range reg.Requests(t) {
		if r.Method == http.MethodPut && r.Path == "/v2/tok/c/manifests/1.0" && r.Status == http.StatusCreated {
			put = true
		}
	}
	if !put {
		t.Fatal("the registry log has no tok/c:1.0 manifest put with the registry token")
	}

	for _, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, auth) || strings.Contains(out, tok.Token) {
			t.Fatalf("a secret appears in the output:\n%s", out)
		}
	}
}

// A token that expires in the middle of a push: a fresh one is fetched and
// the request repeated, and the push succeeds — whether the registry's 401
// says invalid_token (the authorizer drops the token) or nothing (as some
// registries and proxies answer: the credentials worked before, so
// ctrpush starts over with a fresh authorizer, once).
func TestExpiredTokenIsRenewed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		bareAfter bool // strip error= from the challenge
	}{{"invalid_token", false}, {"bare challenge", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const user, secret = "tokenuser", "t0ken-Secret"
			certDir := t.TempDir()
			ts := startTokenServer(t, certDir, user, secret)
			ts.lifetime = 2 * time.Second
			reg := registrytest.Start(t, "-token-realm", ts.url, "-token-rootcerts", filepath.Join(certDir, "token-root.pem"))
			proxy := faultproxy.Start(t, reg.Host)
			proxy.SetRate(1 << 20) // the push outlasts the token
			if tc.bareAfter {
				proxy.SetRewrite(func(resp *http.Response) {
					if c := resp.Header.Get("WWW-Authenticate"); c != "" {
						if i := strings.Index(c, `,error=`); i >= 0 {
							resp.Header.Set("WWW-Authenticate", c[:i])
						}
					}
				})
			}
			root := t.TempDir()
			img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 3, LayerSize: 1 << 20, Seed: 52})
			name := proxy.Host + "/exp/a:1.0"
			mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
			dc := t.TempDir()
			auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))
			writeFile(t, filepath.Join(dc, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, proxy.Host, auth)))
			r := ctrpushEnv(t, []string{"DOCKER_CONFIG=" + dc}, root, "push", "--max-concurrent-uploads", "1", name)
			if r.code != 0 {
				t.Fatalf("push with a token expiring mid-push: exit %d\n%s", r.code, r.stderr)
			}
			tagged, expired, seenOK := false, 0, false
			for _, q := range reg.Requests(t) {
				if q.Method == http.MethodPut && q.Path == "/v2/exp/a/manifests/1.0" && q.Status == http.StatusCreated {
					tagged = true
				}
				if q.Status == http.StatusUnauthorized && seenOK {
					expired++
				}
				if q.Status < 300 {
					seenOK = true
				}
			}
			if !tagged || !strings.HasPrefix(r.stdout, "1.0: digest: "+img.Target.Digest.String()) {
				t.Fatalf("the tag was not put (stdout %q)", r.stdout)
			}
			ts.mu.Lock()
			issued := ts.issued
			ts.mu.Unlock()
			if expired == 0 || issued < 2 {
				t.Fatalf("%d 401s after the first success, %d tokens issued: the token never expired, the test tested nothing", expired, issued)
			}
			t.Logf("push took %s; %d tokens issued, %d requests refused with an expired token", r.elapsed, issued, expired)
		})
	}
}
