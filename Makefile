# modelvet: the two commands a new user needs are `make demo` and `make test`.
# Everything builds with the release profile only, so tests, demo and benchmarks share one build
# of tract and wasmtime.
CARGO ?= cargo
BIN := target/release/modelvet

.PHONY: build test demo bench fixtures fuzz clean-cgroups

build:
	$(CARGO) build --release --workspace --bins --examples

test: build
	$(CARGO) test --release --workspace

demo: build
	bash scripts/demo.sh

bench: build
	bash bench/run.sh

fixtures:
	$(CARGO) run --release --example train_fixtures

-include mk/*.mk
