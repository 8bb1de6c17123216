# Mapsim Chat. `make run` starts the server; `make test` runs every test.
GO      ?= go
# go.mod names the Go release the server is built with (a security
# release); a machine whose Go is older fetches it from the module proxy.
# (Debian's and some images' Go default to GOTOOLCHAIN=local, which would
# refuse instead.)
export GOTOOLCHAIN ?= auto
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Stripped (-s -w), versioned, static (CGO_ENABLED=0) and reproducible
# (-trimpath): every binary the Makefile makes is built this way, so they
# share one build cache.
LDFLAGS := -s -w -X main.version=$(VERSION)
GOBUILD  = CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
BIN     ?= bin/mapsim-chat

.PHONY: run build test test-go test-web test-release fuzz bench bench-e2ee bench-web vet vuln fmt clean tools image release

# Checkers, built from the Go module proxy into bin/tools on first use, at
# pinned versions so that every machine runs the same checks.
TOOLS               := $(CURDIR)/bin/tools
STATICCHECK_VERSION := v0.8.2
GOVULNCHECK_VERSION := v1.9.0
# The vulnerability database: golang.org/x/vulndb from the module proxy
# (vuln.go.dev is not reachable from every build machine); latest unless a
# version is named.
VULNDB_VERSION      ?= latest

## run: build, then start the server on :8000 (SQLite in ./data, generated
## SECRET_KEY); Ctrl-C stops it gracefully, and make says nothing more. (Not
## go run: the go command exits 1 when interrupted, whatever the server did.)
run: build
	$(BIN) serve

## build: a static binary in bin/ (no cgo)
build:
	$(GOBUILD) -o $(BIN) ./cmd/mapsim-chat

# The release: one binary per target, named mapsim-chat-VERSION-OS-ARCH.
RELEASE_TARGETS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
DIST            ?= dist

## release: stripped, versioned, static binaries for RELEASE_TARGETS in dist/,
## and dist/SHA256SUMS (sha256sum -c SHA256SUMS checks them)
release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for t in $(RELEASE_TARGETS); do \
	  os=$${t%/*}; arch=$${t#*/}; ext=; [ "$$os" = windows ] && ext=.exe; \
	  out=$(DIST)/mapsim-chat-$(VERSION)-$$os-$$arch$$ext; \
	  echo "GOOS=$$os GOARCH=$$arch -> $$out"; \
	  GOOS=$$os GOARCH=$$arch $(GOBUILD) -o $$out ./cmd/mapsim-chat; \
	done
	@cd $(DIST) && if command -v sha256sum >/dev/null; then sha256sum mapsim-chat-*; else shasum -a 256 mapsim-chat-*; fi > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

## test-release: make release into a temporary folder and check it
## (scripts/check-release.sh: the sums, stripped static binaries for each
## target, the version printed)
test-release:
	bash scripts/check-release.sh

# The container image. podman or docker, whichever is installed (or
# CONTAINER="podman --runtime runc"); ARCH builds another architecture's
# image (linux/ARCH).
CONTAINER ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
IMAGE     ?= mapsim-chat:$(VERSION)
ARCH      ?= $(shell $(GO) env GOARCH)

## image: the container image IMAGE (Containerfile: FROM scratch, the static
## linux binary, a non-root user, /data as the volume, a HEALTHCHECK)
image:
	@if [ -z "$(CONTAINER)" ]; then echo "make image needs podman or docker (apt-get install podman)"; exit 1; fi
	GOOS=linux GOARCH=$(ARCH) $(GOBUILD) -o bin/linux-$(ARCH)/mapsim-chat ./cmd/mapsim-chat
	$(CONTAINER) build $(if $(findstring podman,$(CONTAINER)),--format docker) --platform linux/$(ARCH) \
	  -f Containerfile -t $(IMAGE) .

## test: every test: the checkers, govulncheck, a short fuzz run, Go with the
## race detector (with the deployment tests: the image, nginx and caddy,
## nginx and haproxy in front of nodes, the README's walk-through), the
## browser tests, then the release check (needs mariadb-server,
## clamav-daemon, chromium, nodejs, curl, nginx-light, caddy, haproxy,
## podman and runc: see README)
test: vet vuln fuzz test-go test-web test-release

# cmd/mapsim-chat starts real servers, MariaDB, Redis, nginx, Caddy, HAProxy
# and podman: a few minutes alone, past 20 on a 2-core machine busy with other
# work, so its bound is 40 minutes (CI's whole run has 90).
test-go:
	$(GO) test -race -count=1 -timeout 40m ./...

# The fuzz targets, as package:FuzzName; go test fuzzes one per run.
FUZZ_TARGETS := ./internal/wire:FuzzDecodeInbound ./internal/httpapi:FuzzReadFields \
                ./internal/files:FuzzCleanName ./internal/files:FuzzSealedRoundTrip \
                ./internal/files:FuzzSealedTamper ./internal/e2ee:FuzzParseMessage
# A count, not a duration: with a duration, Go before 1.27 can fail a run
# with "context deadline exceeded" when the deadline catches a worker mid-
# input on a busy machine (go.dev/issue/75804), although nothing was found.
FUZZTIME   ?= 20000x
FUZZ_COUNT ?= 5000

## fuzz: each Go fuzz target for FUZZTIME, then the Markdown fuzz test on
## FUZZ_COUNT inputs from a fresh FUZZ_SEED (both printed). Longer:
## make fuzz FUZZTIME=10m FUZZ_COUNT=1000000 (a duration is fine by hand). Their seed corpora also run
## in every plain go test and node --test. Without -race: the fuzzed code
## runs on one goroutine, and the detector would cut the inputs tried tenfold.
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done
	@if ! command -v node >/dev/null; then \
	  if [ "$$CI" = "true" ]; then echo "the Markdown fuzz test needs nodejs (apt-get install nodejs)"; exit 1; fi; \
	  echo "SKIPPED: Markdown fuzz test (install nodejs to run it)"; exit 0; fi; \
	seed=$${FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "fuzz web/static/markdown.js: FUZZ_SEED=$$seed FUZZ_COUNT=$(FUZZ_COUNT)"; \
	FUZZ_SEED=$$seed FUZZ_COUNT=$(FUZZ_COUNT) node --test web/fuzz/

CHROMIUM ?= /usr/bin/chromium

## test-web: the web client in Debian's Chromium (playwright-core, Node's test runner)
test-web:
	@if [ ! -x "$(CHROMIUM)" ] || ! command -v node >/dev/null; then \
	  if [ "$$CI" = "true" ]; then echo "browser tests need chromium and nodejs (apt-get install chromium nodejs npm)"; exit 1; fi; \
	  echo "SKIPPED: browser tests (install chromium and nodejs to run them)"; exit 0; fi; \
	set -e; \
	[ -d web/e2e/node_modules/playwright-core ] && [ -d web/e2e/node_modules/axe-core ] || (cd web/e2e && npm ci --no-audit --no-fund); \
	CGO_ENABLED=0 $(GO) build -o bin/mapsim-chat-e2e ./cmd/mapsim-chat; \
	cd web/e2e && CHROMIUM=$(CHROMIUM) MAPSIM_BIN=$(CURDIR)/bin/mapsim-chat-e2e node --test

## bench-e2ee: the web client's end-to-end encryption in Chromium against a real
## server (1 KiB message, a 50-member epoch, a chat of 500 encrypted messages)
bench-e2ee:
	@set -e; \
	[ -d web/e2e/node_modules/playwright-core ] && [ -d web/e2e/node_modules/axe-core ] || (cd web/e2e && npm ci --no-audit --no-fund); \
	CGO_ENABLED=0 $(GO) build -o bin/mapsim-chat-e2e ./cmd/mapsim-chat; \
	cd web/e2e && CHROMIUM=$(CHROMIUM) MAPSIM_BIN=$(CURDIR)/bin/mapsim-chat-e2e node e2ee-web-bench.mjs

## bench-web: the web client's speed in Chromium against a real server: bytes
## transferred for a first and a repeat load, frame times scrolling 2,000 messages
bench-web:
	@set -e; \
	[ -d web/e2e/node_modules/playwright-core ] || (cd web/e2e && npm ci --no-audit --no-fund); \
	CGO_ENABLED=0 $(GO) build -o bin/mapsim-chat-e2e ./cmd/mapsim-chat; \
	cd web/e2e && CHROMIUM=$(CHROMIUM) MAPSIM_BIN=$(CURDIR)/bin/mapsim-chat-e2e node speed-bench.mjs

## bench: the load matrix (cmd/mapsim-bench against fresh servers on SQLite and
## MariaDB; writes bench/RESULTS.md; FULL=1 for the issue's sizes), then the Go benchmarks
bench:
	bash bench/run.sh
	$(GO) test -run '^$$' -bench . -benchtime 3000x -count 1 ./...

## vet: gofmt, go vet and staticcheck, all clean
vet: $(TOOLS)/staticcheck
	@unformatted=$$(gofmt -l cmd internal migrations web); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...

## vuln: govulncheck; fails on a vulnerability the code can reach
vuln: $(TOOLS)/govulncheck
	@dir=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	  if [ -z "$$dir" ]; then echo "could not download golang.org/x/vulndb@$(VULNDB_VERSION)"; exit 1; fi; \
	  rm -rf $(TOOLS)/vulndb && $(GO) run ./internal/tools/vulndb -osv "$$dir/data/osv" -out $(TOOLS)/vulndb
	$(TOOLS)/govulncheck -db file://$(TOOLS)/vulndb ./...

## tools: the pinned checkers in bin/tools
tools: $(TOOLS)/staticcheck $(TOOLS)/govulncheck

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(TOOLS)/govulncheck:
	GOBIN=$(TOOLS) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

fmt:
	gofmt -w cmd internal migrations web

clean:
	rm -rf bin $(DIST)
