package registry

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
)

// Tags follows the Link header's next page, and retries a transient
// fault on a page; a repository the registry does not know is NotFound.
func TestTagsFollowsPages(t *testing.T) {
	failed := false
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/team/app/tags/list" && r.URL.Query().Get("last") == "":
			w.Header().Set("Link", `</v2/team/app/tags/list?last=b&n=2>; rel="next"`)
			fmt.Fprint(w, `{"name":"team/app","tags":["a","b"]}`)
		case r.URL.Path == "/v2/team/app/tags/list" && !failed:
			failed = true
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.URL.Path == "/v2/team/app/tags/list":
			fmt.Fprint(w, `{"name":"team/app","tags":["c"]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`)
		}
	})
	tags, err := repoOn(t, s, fastPolicy).Tags(t.Context())
	if err != nil || !reflect.DeepEqual(tags, []string{"a", "b", "c"}) {
		t.Fatalf("Tags: %v %v", tags, err)
	}
	r, err := NewRepository(repoOn(t, s, fastPolicy).hosts, s.host(), "team/none", ForPull, fastPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Tags(t.Context()); !errdefs.IsNotFound(err) {
		t.Fatalf("Tags of an unknown repository: %v", err)
	}
}
