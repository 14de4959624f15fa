# fleetca — the two commands a newcomer needs are `make run` and `make test`.
GO     ?= go
BIN    := bin/fleetca
DATA   ?= fleetca-data
NAME   ?= fleetca dev

.PHONY: all build run test soak bench fuzz vet clean

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/fleetca

# First run: create a development CA in ./$(DATA) (keys unencrypted, mode
# 0600; use `fleetca init --password-file` for a real CA). Every run: serve it.
run: build
	@if [ ! -f $(DATA)/fleetca.yaml ]; then \
		./$(BIN) init --dir $(DATA) --name "$(NAME)" --no-password; \
	fi
	./$(BIN) serve --dir $(DATA)

# Every test, integration included (they start openssl and curl themselves),
# then the benchmarks' own module (bench/, outside the product's ./...).
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	cd bench && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# The crash test at soak size (not part of make test): SOAK_CYCLES times,
# a real fleetca serve under SOAK_WORKERS concurrent enrolling and revoking
# clients is killed with SIGKILL after a random number of acknowledged
# writes (SOAK_WRITES to twice that), restarted, and checked: every 201
# enrollment and 200 revocation survived (store, revocation feed, CRL) and
# the bbolt file passes its integrity check. It prints the acknowledged and
# lost counts; any loss fails. make test runs the same test, smaller.
SOAK_CYCLES  ?= 20
SOAK_WORKERS ?= 32
SOAK_WRITES  ?= 2500
soak:
	$(GO) test -count=1 -timeout 60m -v -run '^TestCrashRecovery$$' ./cmd/fleetca \
		-crash.cycles $(SOAK_CYCLES) -crash.workers $(SOAK_WORKERS) -crash.writes $(SOAK_WRITES)

# Benchmarks print figures; nothing here fails on a slow machine. The load
# tools live in their own module, bench/ (see bench/doc.go); they build
# ./cmd/fleetca from this checkout. proxyload installs nginx (Debian's
# nginx-light) if it is missing, to compare with it. enrollload -client all
# measures EST simpleenroll and step /1.0/sign beside /v1/enroll, same CA, same run;
# -step-ca installs step-ca v0.30.2 once into $$HOME/.cache/fleetca-tools/bin
# (go install, CGO_ENABLED=0) and enrolls against it beside fleetca at c=32;
# -profile prints where serve's CPU goes (an in-process CPU profile, by area); a bare Go HTTPS
# server that does only the crypto floor per request runs beside them at c=32, as the ceiling.
# revocationload's OCSP phase prints fleetca's answers/s from its cache
# beside `openssl ocsp` (one process and -multi 2) over the same
# certificates, with the ratio and its 5x target in one table;
# BenchmarkOCSPHTTP (./cmd/fleetca, not run here) is that phase in
# process, for a CPU profile of the responder.
# BenchmarkEnrollAuditTree sets enrollments/s with the audit tree beside
# the rate with it off (boltstore.Options.NoAuditTree, set only by the
# benchmark through serve's unexported noAuditTree), same run, medians and
# ratio; BenchmarkVerify times audit verification of 1,000,000 rows.
# store/pgstore's benchmarks and replicaload start their own PostgreSQL
# (apt-get install postgresql), with fsync and synchronous_commit on, to
# set beside store/boltstore's and one bbolt replica's. consoleload builds
# a bbolt store of 1M devices once (minutes) and keeps it in the user
# cache directory (fleetca-bench/), then times the console's pages.
bench:
	cd bench && $(GO) run ./enrollload -client all -step-ca -profile 20000
	cd bench && $(GO) run ./revocationload
	cd bench && $(GO) run ./proxyload
	cd bench && $(GO) run ./renewload
	cd bench && $(GO) run ./replicaload
	cd bench && $(GO) run ./consoleload
	$(GO) test -run '^$$' -bench . -benchtime 2s ./ca ./store/boltstore ./store/pgstore
	$(GO) test -run '^$$' -bench '^BenchmarkEnrollAuditTree$$' -benchtime 1x ./cmd/fleetca
	$(GO) test -run '^$$' -bench '^BenchmarkVerify$$' -benchtime 1x -timeout 30m ./auditlog

# A short run of every fuzz target (go test -fuzz takes one target at a time).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseDeviceID$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzRevokeForm$$' -fuzztime $(FUZZTIME) ./web/ui
	$(GO) test -run '^$$' -fuzz '^FuzzSerialOf$$' -fuzztime $(FUZZTIME) ./web/ui
	$(GO) test -run '^$$' -fuzz '^FuzzAuditFilter$$' -fuzztime $(FUZZTIME) ./web/ui
	$(GO) test -run '^$$' -fuzz '^FuzzTokenForm$$' -fuzztime $(FUZZTIME) ./web/ui
	$(GO) test -run '^$$' -fuzz '^FuzzCheckCSR$$' -fuzztime $(FUZZTIME) ./enroll
	$(GO) test -run '^$$' -fuzz '^FuzzParseToken$$' -fuzztime $(FUZZTIME) ./enroll
	$(GO) test -run '^$$' -fuzz '^FuzzAnyDevice$$' -fuzztime $(FUZZTIME) ./enroll
	$(GO) test -run '^$$' -fuzz '^FuzzManufacturerDeviceID$$' -fuzztime $(FUZZTIME) ./enroll
	$(GO) test -run '^$$' -fuzz '^FuzzParseRenewalToken$$' -fuzztime $(FUZZTIME) ./enroll
	$(GO) test -run '^$$' -fuzz '^FuzzParseStepToken$$' -fuzztime $(FUZZTIME) ./enroll
	$(GO) test -run '^$$' -fuzz '^FuzzParseDeviceIDList$$' -fuzztime $(FUZZTIME) ./enroll
	$(GO) test -run '^$$' -fuzz '^FuzzParseAdminName$$' -fuzztime $(FUZZTIME) ./enroll
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCSRBody$$' -fuzztime $(FUZZTIME) ./web
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeESTBody$$' -fuzztime $(FUZZTIME) ./web
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeAdminJSON$$' -fuzztime $(FUZZTIME) ./web
	$(GO) test -run '^$$' -fuzz '^FuzzClientIP$$' -fuzztime $(FUZZTIME) ./web
	$(GO) test -run '^$$' -fuzz '^FuzzPartitionParam$$' -fuzztime $(FUZZTIME) ./web
	$(GO) test -run '^$$' -fuzz '^FuzzPartitionOf$$' -fuzztime $(FUZZTIME) ./ca
	$(GO) test -run '^$$' -fuzz '^FuzzParseOCSPRequest$$' -fuzztime $(FUZZTIME) ./revocation
	$(GO) test -run '^$$' -fuzz '^FuzzParseCRL$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzParseCRLEnvelope$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyDeviceJWT$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzSyncVerify$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzParsePartitions$$' -fuzztime $(FUZZTIME) ./verify
	$(GO) test -run '^$$' -fuzz '^FuzzParseRequestHead$$' -fuzztime $(FUZZTIME) ./proxy/internal/fastpath
	$(GO) test -run '^$$' -fuzz '^FuzzReadConnect$$' -fuzztime $(FUZZTIME) ./proxy
	$(GO) test -run '^$$' -fuzz '^FuzzParseRetryAfter$$' -fuzztime $(FUZZTIME) ./client
	$(GO) test -run '^$$' -fuzz '^FuzzParseSerialCursor$$' -fuzztime $(FUZZTIME) ./store/internal/backend
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCursor$$' -fuzztime $(FUZZTIME) ./store/internal/backend
	$(GO) test -run '^$$' -fuzz '^FuzzParseCheckpoint$$' -fuzztime $(FUZZTIME) ./auditlog
	$(GO) test -run '^$$' -fuzz '^FuzzParseExportRow$$' -fuzztime $(FUZZTIME) ./auditlog

# gofmt -l . walks bench/ too; go vet needs each module in turn.
vet:
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt the files above"; exit 1; }

clean:
	rm -rf bin
