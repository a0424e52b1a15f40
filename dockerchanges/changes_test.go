package dockerchanges

import (
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// docker import's changes as a Dockerfile reads them: in one ENV, $VAR
// is the value from before it; WORKDIR is relative to the previous one.
func TestApplyChanges(t *testing.T) {
	c, err := Apply(ocispec.ImageConfig{}, []string{
		`ENTRYPOINT /bin/app`, `CMD [ "a", "b" ]`, `ENV A=1 B='$A x' C="$A y" D=\$A`, `ENV E=$A`, `ENV LEGACY some value`,
		`WORKDIR /x`, `WORKDIR ${A}/y`, `LABEL "k 1"=v k2=$B`, `EXPOSE 53/udp 80-81`, `VOLUME ["/data", "/logs"]`,
		`VOLUME /cache`, `STOPSIGNAL SIGTERM`, `USER app`, `# a comment`, ``,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ocispec.ImageConfig{
		Entrypoint: []string{"/bin/sh", "-c", "/bin/app"}, Cmd: []string{"a", "b"},
		Env:        []string{"A=1", "B=$A x", "C= y", "D=$A", "E=1", "LEGACY=some value"},
		WorkingDir: "/x/1/y", Labels: map[string]string{"k 1": "v", "k2": "$A x"},
		ExposedPorts: map[string]struct{}{"53/udp": {}, "80/tcp": {}, "81/tcp": {}},
		Volumes:      map[string]struct{}{"/data": {}, "/logs": {}, "/cache": {}},
		StopSignal:   "SIGTERM", User: "app",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("applyChanges:\n got %+v\nwant %+v", c, want)
	}
	// ENTRYPOINT clears a CMD these changes did not set.
	c, _ = Apply(ocispec.ImageConfig{Cmd: []string{"old"}}, []string{`ENTRYPOINT ["e"]`})
	if c.Cmd != nil {
		t.Fatalf("ENTRYPOINT kept the base CMD: %v", c.Cmd)
	}
	for change, want := range map[string]string{
		"RUN make":       "run is not a valid change command",
		"FROM scratch":   "from is not a valid change command",
		"ONBUILD RUN x":  "ONBUILD in a change is not supported by ctrpush (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR are)",
		`ENV A="open`:    "ENV: unmatched \" quote",
		"EXPOSE 90-80":   `EXPOSE: invalid port range "90-80"`,
		"USER a b":       "USER: requires exactly one argument",
		"LABEL =nothing": `LABEL: "=nothing" is not key=value`,
	} {
		_, err := Apply(ocispec.ImageConfig{}, []string{change})
		if err == nil || err.Error() != want || !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v, want %q", change, err, want)
		}
	}
}
