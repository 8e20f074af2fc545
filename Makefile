# Thin wrapper over CMake. `make` builds build/tiefsee; `make test` builds and runs every test;
# `make sanitize` runs the suite under ASan+UBSan; `make fuzz` builds the libFuzzer targets (clang);
# `make test-arm64` checks the NEON kernels under qemu; `make check` is the whole suite (what .ci/run runs).
JOBS ?= $(shell nproc)
BUILD ?= build

.PHONY: all test sanitize test-arm64 check fuzz deps clean

all:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

# ctest shows a passing test's output only with -V; the llama.cpp conformance table is worth seeing
# every time, so it is printed from the report the test leaves behind.
test: all
	rm -f $(BUILD)/conformance_report.txt $(BUILD)/conformance_moe_report.txt
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
	@for r in conformance_report conformance_moe_report; do \
	  if [ -f $(BUILD)/$$r.txt ]; then echo "---- llama.cpp conformance ($(BUILD)/$$r.txt):"; cat $(BUILD)/$$r.txt; fi; done

# -O1 keeps ASan's reports exact while running the suite several times faster than -O0.
sanitize:
	CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DTS_SANITIZE=ON -DTS_FUZZ=ON
	cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -j $(JOBS) -LE slow

# The NEON kernels, cross-compiled for aarch64 and run under qemu against the scalar references.
test-arm64:
	bash scripts/test-arm64.sh build-arm64

# Sequential on purpose: each phase uses every core, and the release results print first.
check:
	$(MAKE) test-arm64
	$(MAKE) test
	$(MAKE) sanitize

fuzz:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTS_FUZZ=ON -DTS_SANITIZE=ON
	cmake --build build-fuzz -j $(JOBS)

deps:
	bash scripts/install-deps.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz build-arm64
