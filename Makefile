# ctrpush — the two commands a newcomer needs: `make demo` and `make test`.
GO ?= go
BIN := $(CURDIR)/bin
# The containerd daemon and ctr for the daemon-mode tests: the version in
# go.mod, built from the module proxy (about 2 minutes, once per machine).
CONTAINERD_VERSION = $(shell $(GO) list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
CONTAINERD_BIN = $(BIN)/containerd-$(CONTAINERD_VERSION)
# staticcheck for make lint, built from the module proxy (pinned: v0.8.x is
# the release for Go 1.26).
STATICCHECK_VERSION = v0.8.2
STATICCHECK = $(BIN)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
# crane, for `crane validate` of what the tests push (the version the bench
# compares against).
CRANE_VERSION = v0.22.1
CRANE = $(BIN)/crane-$(CRANE_VERSION)/crane
# oras, for `oras discover` of the referrers the tests push (pinned).
ORAS_VERSION = v1.3.6
ORAS = $(BIN)/oras-$(ORAS_VERSION)/oras
# cosign, for `cosign verify --key` of the signatures the tests push
# (pinned: v2.x reads the .sig tag form offline; about 5 minutes to build
# cold on 2 cores, the slowest tool).
COSIGN_VERSION = v2.6.5
COSIGN = $(BIN)/cosign-$(COSIGN_VERSION)/cosign
# notation, for `notation verify` of the notation signatures; built from
# hack/notation, whose go.mod pins it (the module proxy refuses
# `go install …/cmd/notation@version`).
NOTATION_VERSION = $(shell cd hack/notation && $(GO) list -m -f '{{.Version}}' github.com/notaryproject/notation)
NOTATION = $(BIN)/notation-$(NOTATION_VERSION)/notation

.PHONY: all build demo test test-containerd16 containerd16 lint staticcheck unit bench clean containerd docker-cli docker-registry skopeo fuzz crane oras cosign notation tools debian-tools go-tools

all: build

# bin/ctrpush. -buildvcs=auto records the git revision (and whether the
# tree had changes) for `ctrpush version`, whatever GOFLAGS says.
build:
	$(GO) build -buildvcs=auto -o $(BIN)/ ./cmd/ctrpush

# Start a local registry, generate a two-platform image, import it into the
# embedded store, push it with and without --platform, show the registry.
demo:
	./hack/demo.sh

# Everything CI runs: formatting, vet, staticcheck and every test with the race
# detector (real registry processes on 127.0.0.1, the built binary).
# Then the daemon-mode tests again against Debian's containerd 1.6.
test: lint tools fuzz
	$(GO) build -o $(BIN)/testregistry ./internal/cmd/testregistry
	CTRPUSH_REQUIRE_ALL=1 CTRPUSH_TESTREGISTRY=$(BIN)/testregistry CTRPUSH_CONTAINERD_BIN=$(CONTAINERD_BIN) CTRPUSH_CRANE=$(CRANE) CTRPUSH_ORAS=$(ORAS) \
		CTRPUSH_COSIGN=$(COSIGN) CTRPUSH_NOTATION=$(NOTATION) \
		$(GO) test -race -count=1 -timeout 12m ./...
	$(MAKE) --no-print-directory test-containerd16

# A short run of every fuzz target (their seeds and past findings live in
# testdata/fuzz and also run as plain tests).
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report its own deadline as a failure ("context deadline exceeded", no
# failing input; golang/go#75804, fixed in Go 1.27). 5000 runs take about
# 2.5 s per target on a 2-core machine.
FUZZ_TIME ?= 5000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLabelValues$$' -fuzztime $(FUZZ_TIME) ./mount
	$(GO) test -run '^$$' -fuzz '^FuzzPlatformOption$$' -fuzztime $(FUZZ_TIME) ./imageservice
	$(GO) test -run '^$$' -fuzz '^FuzzRetryAfter$$' -fuzztime $(FUZZ_TIME) ./internal/registry
	$(GO) test -run '^$$' -fuzz '^FuzzImportName$$' -fuzztime $(FUZZ_TIME) ./imageservice
	$(GO) test -run '^$$' -fuzz '^FuzzPushReference$$' -fuzztime $(FUZZ_TIME) ./imageservice
	$(GO) test -run '^$$' -fuzz '^FuzzHostsToml$$' -fuzztime $(FUZZ_TIME) ./internal/registry
	$(GO) test -run '^$$' -fuzz '^FuzzDockerConfig$$' -fuzztime $(FUZZ_TIME) ./dockercreds
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeAuth$$' -fuzztime $(FUZZ_TIME) ./server
	$(GO) test -run '^$$' -fuzz '^FuzzPlatformParam$$' -fuzztime $(FUZZ_TIME) ./server

# The tools the tests need, in two lanes side by side: Debian's packages
# (one at a time: dpkg takes a lock; mostly download and disk) and the Go
# builds (one at a time: each uses every core). Cold, the Go lane is the
# longer (cosign alone about 5 minutes on 2 cores).
tools:
	$(MAKE) --no-print-directory -j2 debian-tools go-tools

debian-tools:
	for t in containerd16 docker-cli docker-registry skopeo; do $(MAKE) --no-print-directory $$t || exit 1; done

go-tools:
	for t in containerd crane oras cosign notation; do $(MAKE) --no-print-directory $$t || exit 1; done

containerd: $(CONTAINERD_BIN)/ctr

docker-cli:
	./hack/debian-package.sh docker.io docker "the Engine API tests drive the real docker CLI (its client speaks API 1.41, which ctrpush serve accepts)"

docker-registry:
	./hack/debian-package.sh docker-registry /usr/bin/docker-registry "the registry tests run against distribution 2.8 too"

skopeo:
	./hack/debian-package.sh skopeo skopeo "the compression tests have skopeo read what ctrpush pushed"

$(CONTAINERD_BIN)/ctr:
	GO=$(GO) ./hack/go-install.sh $(CONTAINERD_BIN) \
		github.com/containerd/containerd/v2/cmd/containerd@$(CONTAINERD_VERSION) \
		github.com/containerd/containerd/v2/cmd/ctr@$(CONTAINERD_VERSION)

staticcheck: $(STATICCHECK)

crane: $(CRANE)

oras: $(ORAS)

cosign: $(COSIGN)

notation: $(NOTATION)

$(COSIGN):
	GO=$(GO) ./hack/go-install.sh $(dir $(COSIGN)) \
		github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)

$(NOTATION):
	cd hack/notation && GOFLAGS=-mod=mod $(GO) build -o $(NOTATION) github.com/notaryproject/notation/cmd/notation

$(ORAS):
	GO=$(GO) ./hack/go-install.sh $(dir $(ORAS)) \
		oras.land/oras/cmd/oras@$(ORAS_VERSION)

$(CRANE):
	GO=$(GO) ./hack/go-install.sh $(dir $(CRANE)) \
		github.com/google/go-containerregistry/cmd/crane@$(CRANE_VERSION)

$(STATICCHECK):
	GO=$(GO) ./hack/go-install.sh $(dir $(STATICCHECK)) \
		honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# The daemon-mode tests (every test whose name has Daemon) against Debian's
# containerd 1.6, installed by hack/containerd16.sh when missing (root).
test-containerd16: containerd16 docker-cli crane oras
	/usr/bin/containerd --version
	$(GO) build -o $(BIN)/testregistry ./internal/cmd/testregistry
	CTRPUSH_REQUIRE_ALL=1 CTRPUSH_TESTREGISTRY=$(BIN)/testregistry CTRPUSH_CONTAINERD_BIN=/usr/bin CTRPUSH_CRANE=$(CRANE) CTRPUSH_ORAS=$(ORAS) \
		$(GO) test -race -count=1 -run 'Daemon' ./integration

containerd16:
	./hack/containerd16.sh

# Speed and memory against the raw limit and the peers; writes
# docs/BENCHMARKS.md. BENCH_FLAGS=-big adds the 2 GiB layer (slow).
bench:
	$(GO) run ./bench -runs 5 $(BENCH_FLAGS)

clean:
	rm -rf $(BIN) .demo
