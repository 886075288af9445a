# Static-scan benchmark: modelvet scan vs picklescan (files/s) and MB/s on large benign files.
.PHONY: bench-scan
bench-scan: build
	bash bench/scan_bench.sh
