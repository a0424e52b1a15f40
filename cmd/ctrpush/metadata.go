package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/distribution/reference"

	"github.com/ctrpush/ctrpush/imageservice"
)

// pushMetadata is what --metadata-file holds: the source and, per
// destination and reference, what was pushed and how it ended.
type pushMetadata struct {
	Source       string                `json:"source"`
	Destinations []destinationMetadata `json:"destinations"`
	// Error is the push's error, when it failed.
	Error string `json:"error,omitempty"`
}

// destinationMetadata is one destination reference of a push.
type destinationMetadata struct {
	// Reference is where the image goes, "host/repo:tag".
	Reference string `json:"reference"`
	// Digest, MediaType and Size are what the tag names (or would name,
	// when the push did not get that far).
	Digest    string `json:"digest,omitempty"`
	MediaType string `json:"mediaType,omitempty"`
	Size      int64  `json:"size,omitempty"`
	// Platforms are the platforms of the manifests pushed.
	Platforms []string `json:"platforms,omitempty"`
	// Original is the local image's own digest, set when what was pushed
	// differs: a new index of some platforms (NewIndex) or one manifest
	// instead of the index (Reduced).
	Original string `json:"original,omitempty"`
	NewIndex bool   `json:"newIndex,omitempty"`
	Reduced  bool   `json:"reduced,omitempty"`
	// Referrers pushed with the image (--referrers).
	Referrers int `json:"referrers,omitempty"`
	// Signatures placed with the image (--sign).
	Signatures []signatureMetadata `json:"signatures,omitempty"`
	// Tagged: the tag names Digest.
	Tagged bool `json:"tagged"`
	// Error says why the destination is not tagged (or its referrers did
	// not go).
	Error string `json:"error,omitempty"`
}

// signatureMetadata is one signature of a destination's image.
type signatureMetadata struct {
	Format string `json:"format"`
	Signer string `json:"signer"`
	// Where the signature is ("tag sha256-….sig", "referrer of sha256:…").
	Where string `json:"where"`
	// Manifest is the signature manifest pushed; absent when the
	// destination had this signature already (Existing).
	Manifest string `json:"manifest,omitempty"`
	Existing bool   `json:"existing,omitempty"`
}

// fullReference is dest as the push names it: normalized
// ("docker.io/library/app:1"), with source's tag when dest has none; dest as
// given when it does not parse.
func fullReference(source, dest string) string {
	d, err := reference.ParseNormalizedNamed(dest)
	if err != nil {
		return dest
	}
	if _, ok := d.(reference.Tagged); !ok {
		if s, err := reference.ParseNormalizedNamed(source); err == nil {
			if t, ok := s.(reference.Tagged); ok {
				if dt, err := reference.WithTag(d, t.Tag()); err == nil {
					return dt.String()
				}
			}
		}
	}
	return d.String()
}

// writePushMetadata writes path (atomically: a reader sees the old file or
// the whole new one) from a push's results and error. A destination the
// results do not name (a push to one destination that failed) is listed
// with the error.
func writePushMetadata(path string, args []string, results []imageservice.PushResult, pushErr error) error {
	m := pushMetadata{Source: args[0], Destinations: []destinationMetadata{}}
	for _, r := range results {
		d := destinationMetadata{Reference: r.Reference, Digest: r.Descriptor.Digest.String(), MediaType: r.Descriptor.MediaType,
			Size: r.Descriptor.Size, Platforms: r.Platforms, NewIndex: r.NewIndex, Reduced: r.ManifestInsteadOfIndex,
			Referrers: r.Referrers, Tagged: r.Tagged}
		for _, sg := range r.Signatures {
			sm := signatureMetadata{Format: sg.Format, Signer: sg.Signer, Where: sg.Where, Existing: sg.Existing}
			if sg.Manifest != "" {
				sm.Manifest = sg.Manifest.String()
			}
			d.Signatures = append(d.Signatures, sm)
		}
		if d.NewIndex || d.Reduced {
			d.Original = r.Original.String()
		}
		if r.Err != nil {
			d.Error = message(r.Err)
		}
		m.Destinations = append(m.Destinations, d)
	}
	if pushErr != nil {
		m.Error = message(pushErr)
		var de *imageservice.DestinationsError
		if !errors.As(pushErr, &de) {
			named := map[string]bool{}
			for _, d := range m.Destinations {
				named[d.Reference] = true
			}
			dests := args[1:]
			if len(dests) == 0 {
				dests = args[:1]
			}
			for _, ref := range dests {
				ref = fullReference(args[0], ref)
				if !named[ref] {
					m.Destinations = append(m.Destinations, destinationMetadata{Reference: ref, Error: m.Error})
				}
			}
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write the metadata file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write the metadata file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write the metadata file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write the metadata file %s: %w", path, err)
	}
	return nil
}
