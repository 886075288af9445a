# modelvet: the two commands a new user needs are `make demo` and `make test`.
# Everything builds with the release profile only, so tests, demo and benchmarks share one build
# of tract and wasmtime.
CARGO ?= cargo
# Artefacts are built for one target, target/<triple>/release: musl where rustup has it (a static
# binary that starts without glibc's CPU probe), else the host's triple (see scripts/triple.sh).
export CARGO_BUILD_TARGET ?= $(shell bash scripts/triple.sh)

.PHONY: build test demo bench fixtures fuzz clean-cgroups check-aarch64

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

# The workspace compiled and linted for aarch64 Linux (per-architecture syscall tables; tract's
# build script needs the cross C compiler). A compile check only: the sandbox's tests need a real
# aarch64 kernel to run.
check-aarch64:
	rustup target add aarch64-unknown-linux-gnu
	command -v aarch64-linux-gnu-gcc >/dev/null || apt-get install -y -qq gcc-aarch64-linux-gnu
	$(CARGO) clippy --target aarch64-unknown-linux-gnu --workspace --all-targets -- -D warnings

-include mk/*.mk
