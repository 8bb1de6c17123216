# Mapsim Chat. `make run` starts the server; `make test` runs every test.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: run build test bench vet fmt clean

## run: start the server on :8000 (SQLite in ./data, generated SECRET_KEY)
run:
	$(GO) run ./cmd/mapsim-chat serve

## build: a static binary in bin/ (no cgo)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/mapsim-chat ./cmd/mapsim-chat

## test: every test, with the race detector; needs mariadbd (apt-get install mariadb-server)
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...

## bench: Go benchmarks (the message path over real WebSockets, SQLite and MariaDB)
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3000x -count 1 ./...

vet:
	@unformatted=$$(gofmt -l cmd internal migrations web); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w cmd internal migrations web

clean:
	rm -rf bin
