package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// What the tag schema's tag holds decides what a push may do with it: an
// index of referrers is merged, the subject itself (GitLab answers a
// digest-like tag with the digest's manifest) counts as no index, and any
// other manifest is refused rather than replaced.
func TestReferrersTagIndex(t *testing.T) {
	subjectBody := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`)
	subject := digest.FromBytes(subjectBody)
	sig := digest.FromString("sig")
	referrers := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + sig.String() + `","size":3,"artifactType":"x/sig"}]}`)
	platformIndex := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + sig.String() + `","size":3,"platform":{"os":"linux","architecture":"amd64"}}]}`)
	for _, tc := range []struct {
		name   string
		status int
		body   []byte
		check  func(t *testing.T, ti TagIndex, err error)
	}{
		{"absent", http.StatusNotFound, nil, func(t *testing.T, ti TagIndex, err error) {
			if err != nil || ti.Exists || ti.SubjectItself {
				t.Fatalf("%+v %v", ti, err)
			}
		}},
		{"referrers index", http.StatusOK, referrers, func(t *testing.T, ti TagIndex, err error) {
			if err != nil || !ti.Exists || len(ti.Index.Manifests) != 1 || ti.Index.Manifests[0].Digest != sig || ti.Descriptor.Digest != digest.FromBytes(referrers) {
				t.Fatalf("%+v %v", ti, err)
			}
		}},
		{"the subject itself (GitLab)", http.StatusOK, subjectBody, func(t *testing.T, ti TagIndex, err error) {
			if err != nil || ti.Exists || !ti.SubjectItself {
				t.Fatalf("%+v %v", ti, err)
			}
		}},
		{"a platform index", http.StatusOK, platformIndex, func(t *testing.T, ti TagIndex, err error) {
			var nr *NotReferrersIndexError
			if !errors.As(err, &nr) || !errdefs.IsFailedPrecondition(err) || ti.Exists {
				t.Fatalf("%+v %v", ti, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v2/team/app/manifests/"+ReferrersTag(subject) {
					w.WriteHeader(http.StatusNotFound)
					return
				}
				if tc.body != nil {
					var probe struct {
						MediaType string `json:"mediaType"`
					}
					_ = json.Unmarshal(tc.body, &probe)
					w.Header().Set("Content-Type", probe.MediaType)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write(tc.body)
			})
			ti, err := repoOn(t, s, fastPolicy).ReferrersTagIndex(t.Context(), subject)
			tc.check(t, ti, err)
		})
	}
}

// The referrers API is known from an OCI-Subject header on a manifest PUT,
// else by asking it; a 404 means the tag schema, a NAME_UNKNOWN 404 says
// nothing yet. What registries without the API answer besides 404 (400,
// 405, Artifactory's 406, 501, Google Artifact Registry's login page as a
// 200) means the tag schema too; 401, 403 and 5xx stay errors.
func TestServesReferrers(t *testing.T) {
	subject := digest.FromString("subject")
	const index = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`
	for _, tc := range []struct {
		name        string
		putSubject  bool
		api         int // status of GET /referrers
		contentType string
		body        string
		want        bool
		wantErr     bool
		gets        int
	}{
		{"OCI-Subject on PUT", true, http.StatusNotFound, "", "", true, false, 0},
		{"API answers", false, http.StatusOK, ocispec.MediaTypeImageIndex, index, true, false, 1},
		{"Harbor 2.9 application/json", false, http.StatusOK, "application/json; charset=utf-8", index, true, false, 1},
		{"no API", false, http.StatusNotFound, "", "", false, false, 1},
		{"400", false, http.StatusBadRequest, "", "", false, false, 1},
		{"405", false, http.StatusMethodNotAllowed, "", "", false, false, 1},
		{"Artifactory 406", false, http.StatusNotAcceptable, "", "", false, false, 1},
		{"501", false, http.StatusNotImplemented, "", "", false, false, 1},
		{"GAR login page", false, http.StatusOK, "text/html; charset=utf-8", "<html>sign in</html>", false, false, 1},
		{"JSON not an index", false, http.StatusOK, "application/json", `{"message":"not here"}`, false, false, 1},
		{"401", false, http.StatusUnauthorized, "", "", false, true, 2},
		{"403", false, http.StatusForbidden, "", "", false, true, 2},
		{"500 after retries", false, http.StatusInternalServerError, "", "", false, true, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPut:
					if tc.putSubject {
						w.Header().Set("OCI-Subject", subject.String())
					}
					w.WriteHeader(http.StatusCreated)
				case r.URL.Path == "/v2/team/app/referrers/"+subject.String():
					if tc.contentType != "" {
						w.Header().Set("Content-Type", tc.contentType)
					}
					w.WriteHeader(tc.api)
					_, _ = w.Write([]byte(tc.body))
				default:
					w.WriteHeader(http.StatusNotFound)
				}
			})
			r := repoOn(t, s, fastPolicy)
			body := []byte(`{"schemaVersion":2,"subject":{}}`)
			desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(body), Size: int64(len(body))}
			if err := r.PutManifest(t.Context(), desc, body, desc.Digest.String(), nil); err != nil {
				t.Fatal(err)
			}
			for range 2 { // the answer is remembered; an error is not
				got, err := r.ServesReferrers(t.Context(), subject)
				if (err != nil) != tc.wantErr || got != tc.want {
					t.Fatalf("ServesReferrers = %v, %v; want %v (error: %v)", got, err, tc.want, tc.wantErr)
				}
			}
			gets := 0
			for _, q := range s.requests() {
				if q.Method == http.MethodGet {
					gets++
				}
			}
			if tc.gets < 0 {
				if gets < 4 {
					t.Fatalf("%d GETs of the referrers API: a 500 was not retried", gets)
				}
				return
			}
			if gets != tc.gets {
				t.Fatalf("%d GETs of the referrers API, want %d", gets, tc.gets)
			}
		})
	}
}
