package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxTagPages bounds how many pages of tags/list a listing follows.
const maxTagPages = 1000

// Tags lists the repository's tags (GET /v2/<name>/tags/list), following
// the Link header's next page, retrying transient faults. A repository
// the registry does not know is an *Error (404 NAME_UNKNOWN).
func (r *Repository) Tags(ctx context.Context) ([]string, error) {
	op := "list tags of " + r.Name()
	var tags []string
	next := r.url("/tags/list", nil)
	// fetched: the pages asked for so far; a Link back to one of them
	// (a registry that repeats its last page) ends the listing.
	fetched := map[string]bool{}
	for page := 0; next != "" && !fetched[next] && page < maxTagPages; page++ {
		fetched[next] = true
		var body struct {
			Tags []string `json:"tags"`
		}
		var link string
		err := r.retrying(ctx, nil, func(ctx context.Context) error {
			resp, err := r.send(ctx, op, request{method: http.MethodGet, url: next})
			if err != nil {
				return err
			}
			defer drain(resp)
			if resp.StatusCode != http.StatusOK {
				return decodeError(op, resp)
			}
			b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			if err != nil {
				return readError(op, err)
			}
			if err := json.Unmarshal(b, &body); err != nil {
				return fmt.Errorf("%s: decode the answer: %w", op, err)
			}
			link = resp.Header.Get("Link")
			return nil
		})
		if err != nil {
			return nil, err
		}
		tags = append(tags, body.Tags...)
		next, err = r.nextPage(next, link)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	return tags, nil
}

// nextPage reads a Link header's rel="next" URL, relative to the page it
// came with; "" when there is none.
func (r *Repository) nextPage(current, link string) (string, error) {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			continue
		}
		target = strings.Trim(strings.TrimSpace(target), "<>")
		base, err := url.Parse(current)
		if err != nil {
			return "", err
		}
		u, err := base.Parse(target)
		if err != nil {
			return "", fmt.Errorf("bad Link header %q: %w", link, err)
		}
		if u.Host != base.Host {
			return "", fmt.Errorf("the Link header %q leaves the registry", link)
		}
		return u.String(), nil
	}
	return "", nil
}
