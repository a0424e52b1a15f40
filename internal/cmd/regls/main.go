// Command regls prints what a registry on a loopback address holds: every
// repository, tag, manifest digest, media type and, for an index, its
// platforms. The demo uses it to show the result of a push.
//
//	regls 127.0.0.1:5000
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: regls HOST:PORT")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "regls:", err)
		os.Exit(1)
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func run(host string) error {
	base := "http://" + host + "/v2/"
	var catalog struct{ Repositories []string }
	if err := getJSON(base+"_catalog", &catalog); err != nil {
		return err
	}
	for _, repo := range catalog.Repositories {
		var tags struct{ Tags []string }
		if err := getJSON(base+repo+"/tags/list", &tags); err != nil {
			return err
		}
		for _, tag := range tags.Tags {
			req, _ := http.NewRequest(http.MethodGet, base+repo+"/manifests/"+tag, nil)
			req.Header.Set("Accept", accept)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			var idx ocispec.Index
			_ = json.Unmarshal(body, &idx)
			var plats []string
			for _, m := range idx.Manifests {
				if m.Platform != nil {
					plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
				}
			}
			line := fmt.Sprintf("%s/%s:%s  %s  %s", host, repo, tag, digest.FromBytes(body), resp.Header.Get("Content-Type"))
			if len(plats) > 0 {
				line += "  [" + strings.Join(plats, ", ") + "]"
			}
			fmt.Println(line)
		}
	}
	return nil
}
