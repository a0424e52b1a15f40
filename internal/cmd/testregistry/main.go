// Command testregistry runs the reference registry (distribution v3) on a
// loopback address with filesystem storage, for ctrpush's tests, demo and
// benchmarks. Besides the registry API under /v2/ it serves its own request
// log at /_requests (GET: JSON array; DELETE: clear), so tests can assert
// what a push really sent (mounts, uploads, HEADs).
//
//	testregistry -root DIR [-addr 127.0.0.1:0] [-addr-file FILE] [-htpasswd FILE]
//	             [-tls-cert FILE -tls-key FILE [-tls-client-ca FILE]]
//	             [-token-realm URL -token-rootcerts FILE [-token-service S] [-token-issuer I]]
//	             [-allow-urls REGEXP] [-impl distribution|ggcr [-referrers]]
//
// -impl ggcr serves go-containerregistry's pkg/registry instead (in-memory
// storage, single-POST uploads, no cross-repository mounts, the referrers
// API with -referrers), behind the same request log.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/sirupsen/logrus"
)

// Request is one logged registry request.
type Request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	Status int    `json:"status"`
	// BodyBytes is the number of request body bytes the registry read.
	BodyBytes int64 `json:"bodyBytes"`
}

type requestLog struct {
	mu   sync.Mutex
	reqs []Request
}

type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader passes on the first status only: distribution writes a
// second one on some error paths, which net/http ignores but logs
// ("superfluous response.WriteHeader call") into the tests' output.
func (w *statusWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps sendfile-style copies available to the registry.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (l *requestLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_requests" {
			l.mu.Lock()
			defer l.mu.Unlock()
			if r.Method == http.MethodDelete {
				l.reqs = nil
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(append([]Request{}, l.reqs...))
			return
		}
		body := &countingBody{ReadCloser: r.Body}
		r.Body = body
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		l.mu.Lock()
		l.reqs = append(l.reqs, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: sw.status, BodyBytes: body.n})
		l.mu.Unlock()
	})
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	root := flag.String("root", "", "storage directory (required)")
	addrFile := flag.String("addr-file", "", "write the address actually listened on to this file")
	htpasswd := flag.String("htpasswd", "", "require basic auth with the users in this htpasswd (bcrypt) file")
	tlsCert := flag.String("tls-cert", "", "serve HTTPS with this certificate (PEM)")
	tlsKey := flag.String("tls-key", "", "key of -tls-cert (PEM)")
	clientCA := flag.String("tls-client-ca", "", "require client certificates signed by this CA (PEM)")
	tokenRealm := flag.String("token-realm", "", "require bearer tokens from this token server URL")
	tokenService := flag.String("token-service", "ctrpush-test", "token auth: the service (audience) name")
	tokenIssuer := flag.String("token-issuer", "ctrpush-test-issuer", "token auth: the trusted issuer")
	tokenRoots := flag.String("token-rootcerts", "", "token auth: PEM bundle of the certificates tokens are signed with")
	impl := flag.String("impl", "distribution", "registry implementation: distribution (v3) or ggcr (go-containerregistry's pkg/registry)")
	referrers := flag.Bool("referrers", false, "with -impl ggcr: serve the OCI referrers API")
	allowURLs := flag.String("allow-urls", "", "accept manifests whose layers name URLs matching this regular expression (foreign layers; default: none)")
	flag.Parse()
	if *root == "" {
		fmt.Fprintln(os.Stderr, "testregistry: -root DIR is required")
		os.Exit(2)
	}
	logrus.SetLevel(logrus.FatalLevel) // our request log says what matters; errors are per-request chatter
	logrus.SetOutput(os.Stderr)

	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem":  configuration.Parameters{"rootdirectory": *root},
			"delete":      configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	cfg.Catalog.MaxEntries = 1000
	cfg.Log.AccessLog.Disabled = true
	cfg.Log.Level = "error"
	cfg.HTTP.Secret = "ctrpush-testregistry"
	if *allowURLs != "" {
		cfg.Validation.Manifests.URLs.Allow = []string{*allowURLs}
	}
	if *tokenRealm != "" {
		cfg.Auth = configuration.Auth{"token": configuration.Parameters{
			"realm": *tokenRealm, "service": *tokenService, "issuer": *tokenIssuer, "rootcertbundle": *tokenRoots,
		}}
	}
	if *htpasswd != "" {
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "ctrpush-test", "path": *htpasswd}}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var app http.Handler
	switch *impl {
	case "distribution":
		app = handlers.NewApp(ctx, cfg)
	case "ggcr":
		app = ggcr.New(ggcr.Logger(stdlog.New(io.Discard, "", 0)), ggcr.WithReferrersSupport(*referrers))
	default:
		fmt.Fprintf(os.Stderr, "testregistry: -impl %q: want distribution or ggcr\n", *impl)
		os.Exit(2)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testregistry:", err)
		os.Exit(1)
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testregistry:", err)
			os.Exit(1)
		}
		// HTTP/2 offered as distribution's own TLS server offers it (Go's
		// ServeTLS); a client that does not ask for it gets HTTP/1.1.
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
		if *clientCA != "" {
			pem, err := os.ReadFile(*clientCA)
			if err != nil {
				fmt.Fprintln(os.Stderr, "testregistry:", err)
				os.Exit(1)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			tc.ClientCAs = pool
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		ln = tls.NewListener(ln, tc)
	}
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "testregistry:", err)
			os.Exit(1)
		}
		_ = os.Rename(tmp, *addrFile)
	}
	fmt.Println(ln.Addr().String())

	log := &requestLog{}
	srv := &http.Server{Handler: log.wrap(app)}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "testregistry:", err)
		os.Exit(1)
	}
}
