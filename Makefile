# The comet gateway. `make run` starts the system, `make test` is what CI runs.
GO       ?= go
BIN      := $(CURDIR)/bin
FUZZTIME ?= 30s
STATICCHECK_VERSION ?= v0.8.2
# The revision the binaries report (version, comet_build_info), whatever
# GOFLAGS says of -buildvcs.
REVISION ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
# The JavaScript library's test dependency (the ws package: Node 20 has
# no WebSocket of its own), installed by npm ci from its lock file.
JS_DEPS  := clients/js/node_modules/ws/package.json
LDFLAGS  := -X github.com/cometgw/comet/internal/obs.revision=$(REVISION)

.PHONY: all build run test lint fuzz clean study study-fast bench-memory bench-million bench-scale bench-redundant bench-ramp bench-throughput bench-tls bench-fanout bench-subscribe bench-social bench-chat bench-hostile bench-drain bench-clients bench-2m bench-webhook bench-history bench-hooks bench docs

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/... ./bench/naive ./bench/naivews ./bench/tlscost ./bench/hostile ./bench/floor ./bench/hookrecv

# The router (with its embedded NATS), then the gateway, in the foreground
# with their logs; Ctrl-C stops both.
run: build
	./scripts/run.sh

# vet, every test with the race detector (fuzz seed corpora included), the
# end-to-end smoke of the real binaries built above and, beside them, the
# JavaScript client library's tests (npm test in clients/js) against the
# same binaries; its log is bin/js-test.log.
test: build | $(JS_DEPS)
	$(GO) vet ./...
	@(cd clients/js && COMET_BIN=$(BIN) npm test > $(BIN)/js-test.log 2>&1) & js=$$!; \
	COMET_BIN=$(BIN) $(GO) test -race -count=1 -timeout 10m ./...; rc=$$?; \
	if wait $$js; then echo "npm test in clients/js:"; grep -E '^# (tests|pass|fail|duration)' $(BIN)/js-test.log; \
	else cat $(BIN)/js-test.log; echo "npm test in clients/js FAILED (bin/js-test.log)"; rc=1; fi; exit $$rc

$(JS_DEPS):
	npm ci --prefix clients/js --no-audit --no-fund

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Every fuzz target of the tree (found in the test files, so none is
# missed), each for FUZZTIME (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for f in $$(git ls-files '*_test.go' | xargs grep -l '^func Fuzz'); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz: $$t in ./$$(dirname $$f) for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f); \
		done; \
	done

# Every command's -h into docs/OPERATIONS.md ("Every flag").
docs: build
	./scripts/gen-flags.sh

# The 24-hour memory study (DURATION=10m for a quick one); outputs in
# study/<timestamp>/. study-fast sends the 86.4 million messages of 24 hours
# at 1,000/s as fast as the system takes them.
DURATION ?= 24h
study: build
	DURATION=$(DURATION) ./scripts/study.sh

study-fast: build
	FAST=1 DURATION=$(DURATION) ./scripts/study.sh

# Hostile clients beside good ones: 10,000 SSE and WebSocket clients at
# 1,000 numbered msgs/s, alone and then beside 100 clients of each
# hostile kind (bench/hostile); latency, loss, CPU, memory, each
# attacker's fate.
bench-hostile: build
	./scripts/bench-hostile.sh

# The Haskell chat: 10,000 WebSocket clients in one room, each publishing
# every 10 s; delivery and latency from publisher to receivers.
bench-chat: build
	./scripts/bench-chat.sh

# Memory per idle stream: this gateway, a naive fasthttp gateway and
# nginx+nchan (installed if missing), N = 10k and 100k (FULL=1: and 1M).
bench-memory: build
	FULL=$(FULL) ./scripts/bench-memory.sh

# The arrival rate: 100,000 streams as fast as they go, three times.
bench-ramp: build
	./scripts/bench-ramp.sh

# Delivered messages/s end to end: 10,000 and 100,000 streams, msggen flat
# out, with and without -write-delay, beside nginx+nchan fed by HTTP POSTs,
# and the router alone.
bench-throughput: build
	./scripts/bench-throughput.sh

# A gateway restart under 100,000 SSE streams, with and without the drain:
# the reconnect peak, the time until all are back, messages lost.
bench-drain: build
	./scripts/bench-drain.sh

# The JavaScript client library beside the bare npm ws package: 10,000
# clients each, msggen at 1,000 numbered messages/s (msgs/s, CPU, latency,
# none lost); then 10,000 library clients across a gateway restart, with
# and without the drain (reconnects per second, all back, none lost).
bench-clients: build | $(JS_DEPS)
	./scripts/bench-clients.sh

# Topics and broadcast at size: 20 broadcasts to 100,000 streams
# (FULL=1: 1,000,000), a 10,000-member topic at 100 publishes/s among
# 100,000 others, the Haskell chat (10,000 WebSockets in one room).
bench-fanout: build
	FULL=$(FULL) ./scripts/bench-fanout.sh

# Webhooks: 100,000 ids logging in and out within 60 s, every online and
# offline event to a receiver that checks signatures (IDS=, TOPICS=).
bench-webhook: build
	IDS=$(IDS) TOPICS=$(TOPICS) ./scripts/bench-webhook.sh

# Connect hook: 20,000 streams opened with and without -connect-hook
# against a local backend: new streams/s and memory per stream.
bench-hooks: build
	./scripts/bench-hooks.sh

# Topic history: memory per kept message at 10,000 topics x 100 messages
# (TOPICS=, KEEP=).
bench-history: build
	TOPICS=$(TOPICS) KEEP=$(KEEP) ./scripts/bench-history.sh

# Stored subscriptions: 15,000,000 loaded with router subscribe -file.
bench-subscribe: build
	./scripts/bench-subscribe.sh

# The series' part 3: a social graph in stored subscriptions, every user
# streaming, events by users reaching their followers.
bench-social: build
	./scripts/bench-social.sh

# The capacity model's constants (docs/SCALING.md): 50 gateway processes
# of 2,000 streams against one router, what each delivered message costs.
bench-scale: build
	./scripts/bench-scale.sh

# What redundant routers (-redundant, three on a NATS cluster) cost against
# one router alone: acked msgs/s to SSE streams, checked.
bench-redundant: build
	./scripts/bench-redundant.sh

# What TLS (nginx in front, deploy/nginx/comet.conf) costs per connection.
bench-tls: build
	./scripts/bench-tls.sh

# Every benchmark that fits in half an hour: memory per client against the
# peers, the arrival rate, and the delivered rate.
bench: bench-memory bench-ramp bench-throughput

# A million streams on this machine, with the chart of the memory log.
bench-million: build
	./scripts/bench-million.sh

# Two million clients on this 2-core, 24 GiB machine (about 45 minutes):
# the million run at 2,000,000 ramped at 5,000/s for chunked streams, then
# for WebSockets (pinged every 5 minutes, ramped at 2,500/s), then one
# broadcast to 2,000,000 streams, the time until the last has it (no
# floor beside it: its net.Conns do not fit). Each logs what the
# machine's memory went to every 10 s (memory.log); a part that does not
# fit is stopped by the memory guard (GUARD_MB) and the run goes on to
# the next (docs/BENCHMARKS.md, "Two million").
bench-2m: build
	CLIENTS=2000000 RAMP=5000 ./scripts/bench-million.sh
	-KIND=ws GATEWAY_FLAGS="-ws-ping 5m" CLIENTS=2000000 RAMP=2500 ./scripts/bench-million.sh
	-FLOOR=0 FULL=1 FULL_N=2000000 FULL_RAMP=5000 FULL_BROADCASTS=1 ./scripts/bench-fanout.sh

clean:
	rm -rf $(BIN)
