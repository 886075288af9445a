# modelvet: the two commands a new user needs are `make demo` and `make test`.
# Everything builds with the release profile only, so tests, demo and benchmarks share one build
# of tract and wasmtime.
CARGO ?= cargo
BIN := target/release/modelvet

.PHONY: build test demo bench fixtures fuzz clean-cgroups

build:
	$(CARGO) build --release --workspace --bins --examples

test: build
	CARGO=$(CARGO) bash scripts/test.sh

demo: build
	bash scripts/demo.sh

bench: build
	bash bench/run.sh

fixtures:
	$(CARGO) run --release --example train_fixtures
	$(CARGO) run --release --example gen_wasm_model
	$(CARGO) run --release --example gen_scan_corpus
	$(CARGO) run --release --example gen_format_corpus

# Each fuzz target for FUZZ_SECONDS (libFuzzer on the stable toolchain, see fuzz/run_stable.sh),
# seeded from fuzz/seeds/TARGET where there is one.
FUZZ_SECONDS ?= 60
fuzz:
	for t in pickle_vm zip_route safetensors gguf onnx keras channel; do bash fuzz/run_stable.sh $$t $(FUZZ_SECONDS) seeds/$$t || exit 1; done

-include mk/*.mk
