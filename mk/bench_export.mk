# bench_export.mk — export throughput per path and exporter CPU at 100k events/s (bench/bench_export.c, driven with the test receiver).
BENCH_TARGETS += bench-export
.PHONY: bench-export
bench-export: build
	$(VENV)/bin/python bench/bench_export.py $(CURDIR)/$(BUILD)
