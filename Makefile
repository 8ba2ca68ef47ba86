# berth — a declarative container node agent.
GO        ?= go
BIN       := bin
PKG       := berth.dev/berth
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X $(PKG)/version.Version=$(VERSION)
# Test images built by hack/mkimage (make testimages) land here (outside git).
TESTIMAGES ?= $(CURDIR)/.cache/testimages
RUN_ROOT  ?= $(CURDIR)/.berth

export BERTH_TESTIMAGES := $(TESTIMAGES)
export BERTH_BIN := $(CURDIR)/$(BIN)

.PHONY: all build test critest kubelet-e2e cri-flow bench run run-down generate deps lint testimages fuzz-short clean man install

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/berthd ./cmd/berth ./cmd/berth-shim ./cmd/berth-init ./cmd/berth-pause

# Installs what builds and tests need on Debian (root). Idempotent.
deps:
	hack/deps.sh

testimages:
	hack/testimages.sh $(TESTIMAGES)

# The one test command: unit tests, then end-to-end tests against real
# binaries, registries and runc. Root-only tests skip without root, and fail
# instead of skipping when CI=true. It ends with a count of what passed,
# failed and was skipped, and why each skip happened (hack/testsum).
test: build testimages
	$(GO) vet ./...
	$(GO) run ./hack/testsum -count=1 -timeout 15m ./...

# Runs every Fuzz* target in the tree for a few seconds (FUZZ_BUDGET=30 s
# in all); CI runs it after make test.
fuzz-short:
	hack/fuzz-short.sh

# The CRI validation suite against a private berthd, its images served
# offline by hack/criimages (docs/cri.md; not part of make test).
critest: build
	hack/critest.sh

# A real kubelet (v1.34.4, built from the module proxy into .cache/kubelet)
# running static pods against a private berthd (docs/cri.md; not part of
# make test).
kubelet-e2e: build testimages
	hack/kubelet-e2e.sh

# The crictl flow timed step by step (docs/cri.md), with crictl on PATH or
# in ~/go/bin (go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0).
cri-flow: build testimages
	hack/cri-flow.sh

bench: build testimages
	hack/bench.sh

# Brings up a real agent under ./.berth applying examples/manifests/.
run: build
	hack/run.sh $(RUN_ROOT)

# Tears down what make run left running.
run-down: build
	hack/run.sh down $(RUN_ROOT)

generate:
	hack/generate.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	hack/check-generated.sh

# Man pages generated from the command tree, into ./man/man1.
man: build
	$(BIN)/berth __gendocs man man/man1

# Installs binaries, the systemd unit, man pages, completions and a default
# /etc/berth/config.yaml (kept if present): make install PREFIX=/usr DESTDIR=...
PREFIX ?= /usr/local
install: build
	PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) hack/install.sh $(BIN)

clean:
	rm -rf $(BIN) man
