package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"

	"github.com/ctrpush/ctrpush/imageservice"
)

// pushSource applies docker push's tag rule (docker ≥ 20.10) to SOURCE:
// a repository without tag or digest means its "latest" tag, unless
// --all-tags asks for every local tag of it; --all-tags with a tag or a
// digest is bad usage. A reference that does not parse is left to the
// push, which names what is wrong with it. defaulted says "latest" was
// added.
func pushSource(arg string, allTags bool) (source string, defaulted bool, err error) {
	ref, perr := reference.ParseNormalizedNamed(arg)
	if perr != nil {
		return arg, false, nil
	}
	_, tagged := ref.(reference.Tagged)
	_, digested := ref.(reference.Digested)
	switch {
	case allTags && (tagged || digested):
		return "", false, usagef("--all-tags pushes every local tag of a repository: give SOURCE without tag or digest (%q names one), or drop --all-tags", arg)
	case allTags || tagged || digested:
		return arg, false, nil
	}
	return arg + ":" + defaultTag, true, nil
}

// latestHint adds to a "not found" for a SOURCE given without tag the tags
// the store has of that repository, as the way on.
func latestHint(err error, source string, tags []string) error {
	var nf *imageservice.ImageNotFoundError
	if !errors.As(err, &nf) || len(tags) == 0 {
		return err
	}
	repo := strings.TrimSuffix(source, ":"+defaultTag)
	return fmt.Errorf("%w: a repository without tag means its %q tag, as with docker push; the store has %s: name one (%s:%s), or push them all with --all-tags",
		err, defaultTag, strings.Join(tags, ", "), repo, tags[0])
}

// defaultTag is the tag a reference without one means (docker's).
const defaultTag = "latest"
