# ratingsd — the two commands a newcomer needs are `make run` and `make test`.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 60s
BENCHTIME ?= 1s

.PHONY: all build run test test-short bench bench-hot fuzz lint clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

# The main job: ratingsd with its embedded NATS server and demo load;
# dashboard on http://127.0.0.1:8080.
run: build
	./bin/ratingsd -demo

# What CI runs (.ci/run): vet, then every test with the race detector.
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

# Hot-path micro-benchmarks (go test -bench); end-to-end figures live in bench/.
bench-hot:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./sketch/ ./aggregator/...

bench: bench-hot

# Fuzz every decoder for $(FUZZTIME) each (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for spec in $$(grep -r --include='*_test.go' '^func Fuzz' . | sed -E 's#^\./(.*)/[^/]+_test.go:func (Fuzz[A-Za-z0-9_]*).*#\1:\2#'); do \
		pkg=$${spec%%:*}; fn=$${spec##*:}; \
		echo "== fuzz ./$$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 100x ./$$pkg; \
	done

lint:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo 'gofmt: files above need formatting'; exit 1)

clean:
	rm -rf bin
