# ratingsd — the two commands a newcomer needs are `make run` and `make test`.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 60s
BENCHTIME ?= 1s

.PHONY: all build run test test-short bench bench-smoke bench-hot fuzz lint clean vendor-uplot privacy-doc

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

# The benchmark suite (bench/harness, bench/cmd/benchrun): nats bench ceiling,
# ratingsd end to end, Redis HyperLogLog and exact counting on the same
# stream, latency, accuracy, scale and retention. About 15 minutes on
# 2 cores; rewrites bench/img/*.png and the harness section of bench/RESULTS.md.
# It starts nats-server, ratingsd and redis-server as children (redis-server
# from Debian: apt-get install -y redis-server) and installs natscli into
# bench/bin on first use.
bench:
	$(GO) run ./bench/cmd/benchrun

# Every part of the suite once, small (under two minutes): fails unless each
# part produces its figures. Writes into a temporary directory only.
bench-smoke:
	$(GO) run ./bench/cmd/benchrun -smoke

# Fuzz every decoder for $(FUZZTIME) each (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for spec in $$(grep -r --include='*_test.go' '^func Fuzz' . | sed -E 's#^\./(.*)/[^/]+_test.go:func (Fuzz[A-Za-z0-9_]*).*#\1:\2#'); do \
		pkg=$${spec%%:*}; fn=$${spec##*:}; \
		echo "== fuzz ./$$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 100x ./$$pkg; \
	done

# docs/privacy.md is the privacy statement of the default configuration
# (a test checks it); regenerate it after changing what the service keeps.
privacy-doc:
	$(GO) run ./cmd/ratingsd -privacy-statement > docs/privacy.md

lint:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo 'gofmt: files above need formatting'; exit 1)

clean:
	rm -rf bin

# The dashboard's chart library, vendored into the binary's static files: uPlot
# from the npm registry at a pinned version, checked against the pinned sha256
# of its tarball. To upgrade, set both (a mismatch prints the new digest), run
# `make vendor-uplot`, and commit the files it writes. No node_modules is kept.
UPLOT_VERSION ?= 1.6.32
UPLOT_SHA256  ?= 4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d
UPLOT_DIR     := aggregator/httpapi/static/vendor/uplot

vendor-uplot:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	tgz=$$(cd "$$tmp" && npm pack --silent uplot@$(UPLOT_VERSION)); \
	sum=$$(sha256sum "$$tmp/$$tgz" | cut -d' ' -f1); \
	if [ "$$sum" != "$(UPLOT_SHA256)" ]; then \
		echo "vendor-uplot: $$tgz has sha256 $$sum, want $(UPLOT_SHA256)" >&2; exit 1; fi; \
	tar -xzf "$$tmp/$$tgz" -C "$$tmp"; \
	mkdir -p $(UPLOT_DIR); \
	cp "$$tmp/package/dist/uPlot.iife.min.js" "$$tmp/package/dist/uPlot.min.css" "$$tmp/package/LICENSE" $(UPLOT_DIR)/; \
	printf 'uplot %s from the npm registry (npm pack), tarball sha256 %s\nrefreshed by: make vendor-uplot\n' \
		"$(UPLOT_VERSION)" "$$sum" > $(UPLOT_DIR)/VERSION; \
	echo "vendor-uplot: uplot $(UPLOT_VERSION) -> $(UPLOT_DIR)"
