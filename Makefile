# kvforge — the two commands a newcomer needs:
#   make demo   set everything up, build, and ask SmolLM2 a question
#   make test   set everything up, build, and run the whole test suite (what CI runs)
# Everything installs itself (scripts/setup.sh) and is idempotent.

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
PROMPT     ?= What is the capital of France? Answer in one sentence.

.PHONY: all setup configure build demo test test-main test-asan bench clean

all: build

setup:
	@bash scripts/setup.sh

$(BUILD)/build.ninja: | setup
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

configure: setup $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	./$(BUILD)/experiments/kvforge generate --model default --prompt "$(PROMPT)" --max-new-tokens 64

test: test-main test-asan

test-main: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The parsers of untrusted files again, under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: setup
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVF_IO_ONLY=ON -DKVF_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

# Prefill/decode tokens/s of kvforge vs transformers on SmolLM2 (CPU); writes docs/bench-runtime.md.
bench: build
	.venv/bin/python experiments/bench_runtime.py --kvforge ./$(BUILD)/experiments/kvforge --out docs/bench-runtime.md

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
