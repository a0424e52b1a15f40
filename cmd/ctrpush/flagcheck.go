package main

import (
	"fmt"
	"strings"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
)

// checkPlatforms refuses an empty --platform value (`--platform ""`, or
// an empty item of a comma-separated list): it would otherwise count as no
// --platform at all and push or pull the default silently.
func checkPlatforms(cmd *cobra.Command, values []string) error {
	if !cmd.Flags().Changed("platform") {
		return nil
	}
	if len(values) == 0 {
		return usagef(`--platform "": empty platform; give os/arch[/variant], e.g. --platform linux/amd64, or leave --platform out for the default`)
	}
	for _, v := range values {
		if strings.TrimSpace(v) == "" {
			return usagef("--platform %q: empty platform in the list; give os/arch[/variant] values, e.g. --platform linux/amd64,linux/arm64", strings.Join(values, ","))
		}
	}
	return nil
}

// chunkSizeForm is what --chunk-size takes, for its error messages.
var chunkSizeForm = fmt.Sprintf("want SIZE or HOST=SIZE, SIZE in bytes or with a unit and at least %s, e.g. --chunk-size 5MiB or --chunk-size ghcr.io=4MiB",
	units.BytesSize(imageservice.MinChunkSize))

// parseChunkSize reads one --chunk-size value: SIZE for every registry, or
// HOST=SIZE (host[:port], as in an image reference) for one.
func parseChunkSize(v string) (host string, n int64, err error) {
	host, size, named := strings.Cut(v, "=")
	if !named {
		host, size = "", v
	}
	if named && (host == "" || strings.ContainsAny(host, "/=@ \t")) {
		return "", 0, usagef("--chunk-size %q: %q is no registry host; %s", v, host, chunkSizeForm)
	}
	n, err = units.RAMInBytes(strings.TrimSpace(size))
	if err != nil || n < 1 {
		return "", 0, usagef("--chunk-size %q: %s", v, chunkSizeForm)
	}
	if n < imageservice.MinChunkSize {
		return "", 0, usagef("--chunk-size %q: a chunk is at least %s (smaller ones only multiply the requests), e.g. --chunk-size 5MiB or --chunk-size ghcr.io=4MiB",
			v, units.BytesSize(imageservice.MinChunkSize))
	}
	return host, n, nil
}
