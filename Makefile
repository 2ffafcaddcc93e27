# rtcgate — see README.md. `make run` and `make test` need only Go and a
# Debian machine; test-deps installs the peers the tests talk to.

GO       ?= go
FUZZTIME ?= 30s
PKGS     := ./...

.PHONY: run build demo test test-deps vet fuzz bench soak clean

run:
	$(GO) run ./cmd/rtcgate serve

build:
	$(GO) build -o bin/rtcgate ./cmd/rtcgate

# rtcgate, the sample backend and, when installed, Kamailio and a sipp
# echo: open the URL it prints, Connect, Call (examples/demo). Ctrl-C ends it.
demo: build
	$(GO) build -o bin/backend ./examples/backend
	$(GO) build -o bin/demo ./examples/demo
	bin/demo -rtcgate bin/rtcgate -backend bin/backend

test: test-deps vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-deps:
	./scripts/test-deps.sh

vet:
	@unformatted=$$(gofmt -l $$(find . -name '*.go' -not -path '*/node_modules/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# Each fuzz target for FUZZTIME (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# ngbench: rtcgate side by side with Debian's rtpengine-daemon (userspace,
# --table=-1) in one run, printing ratios; clientbench: client sessions
# (idle memory, sendData round trips); clusterbench: the cluster on Redis
# behind HAProxy (1-3 nodes, forwarding's CPU, takeover after SIGKILL, the
# hook queue's Redis store). Not tests: figures, for closing notes.
bench:
	./scripts/bench-deps.sh
	$(GO) run ./bench/ngbench $(BENCHFLAGS)
	$(GO) run ./bench/clientbench $(CLIENTBENCHFLAGS)
	$(GO) run ./bench/hooksbench $(HOOKSBENCHFLAGS)
	$(GO) run ./bench/sipbench $(SIPBENCHFLAGS)
	$(GO) run ./bench/clusterbench $(CLUSTERBENCHFLAGS)

# The long half of the hostile suite: each attack against a fresh rtcgate,
# with liveness, RSS, descriptors, log bytes and a call's RTP (README).
soak:
	$(GO) run ./bench/attackbench $(SOAKFLAGS)

clean:
	rm -rf bin
