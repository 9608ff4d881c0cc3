# collector.mk — the real OpenTelemetry Collector for the test suites (tests/support/collector: otelcol + OTLP receiver +
# a JSON-lines exporter, core v0.165.0 / v1.71.0 from the Go module proxy), built once into build/ and rebuilt
# only when tests/support/collector changes (first build ~2 min, then cached).
COLLECTOR_SRC := $(wildcard tests/support/collector/*.go) tests/support/collector/go.mod tests/support/collector/go.sum
COLLECTOR_BIN := $(CURDIR)/$(BUILD)/otelcol-polytel
# Go: on PATH, else the usual tarball location. A go older than go.mod's fetches the newer toolchain itself.
GO ?= $(shell command -v go 2>/dev/null || { test -x /usr/local/go/bin/go && echo /usr/local/go/bin/go; })
export POLYTEL_OTELCOL := $(COLLECTOR_BIN)

.PHONY: collector

$(COLLECTOR_BIN): $(COLLECTOR_SRC)
	@test -n "$(GO)" || { echo "collector: Go is missing (looked on PATH and in /usr/local/go/bin): the real-Collector suites need Go >= 1.21 (go.mod's 1.26 toolchain is then fetched by go from the module proxy); set GO=/path/to/go" >&2; exit 1; }
	@mkdir -p $(dir $@)
	@echo "collector: building $(notdir $@) from tests/support/collector (otelcol v0.165.0; first build takes ~2 min)" >&2
	cd tests/support/collector && GOFLAGS=-mod=readonly $(GO) build -trimpath -o $@.tmp . && mv $@.tmp $@

collector: deps $(COLLECTOR_BIN)
