# Thin wrapper over CMake. `make` builds build/tiefsee; `make test` builds and runs every test;
# `make sanitize` runs the suite under ASan+UBSan; `make fuzz` builds the libFuzzer targets (clang).
JOBS ?= $(shell nproc)
BUILD ?= build

.PHONY: all test sanitize fuzz deps clean

all:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

test: all
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

sanitize:
	CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTS_SANITIZE=ON -DTS_FUZZ=ON
	cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -j $(JOBS) -LE slow

fuzz:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTS_FUZZ=ON -DTS_SANITIZE=ON
	cmake --build build-fuzz -j $(JOBS)

deps:
	bash scripts/install-deps.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz
