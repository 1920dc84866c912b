# mailark: the two commands are `make run` and `make test`. Everything else is for developers.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test run bench bench-lmtp bench-imap bench-dav bench-backup fuzz format clean

all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 1200

run: build
	@sh scripts/run-demo.sh $(BUILD)/mailark var

# Every benchmark runs even if an earlier one fails; the target fails if any did.
bench: build
	@sh scripts/install-deps.sh --bench
	@status=0; \
	/usr/bin/python3 bench/lmtp_bench.py --mailark $(BUILD)/mailark || status=1; \
	/usr/bin/python3 bench/imap_bench.py --mailark $(BUILD)/mailark || status=1; \
	/usr/bin/python3 bench/dav_bench.py --mailark $(BUILD)/mailark || status=1; \
	/usr/bin/python3 bench/backup_bench.py --mailark $(BUILD)/mailark || status=1; \
	exit $$status

bench-lmtp: build
	@sh scripts/install-deps.sh --bench
	@/usr/bin/python3 bench/lmtp_bench.py --mailark $(BUILD)/mailark

bench-imap: build
	@sh scripts/install-deps.sh --bench
	@/usr/bin/python3 bench/imap_bench.py --mailark $(BUILD)/mailark

bench-dav: build
	@sh scripts/install-deps.sh --bench
	@/usr/bin/python3 bench/dav_bench.py --mailark $(BUILD)/mailark

bench-backup: build
	@sh scripts/install-deps.sh --bench
	@/usr/bin/python3 bench/backup_bench.py --mailark $(BUILD)/mailark

# Long libFuzzer runs (clang); `make test` runs a short bounded pass of every target.
fuzz:
	@sh scripts/install-deps.sh --fuzz
	@test -f build-fuzz/CMakeCache.txt || CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DMAILARK_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS) --target fuzz_mime fuzz_lmtp fuzz_imap fuzz_dav fuzz_groupware
	@for t in fuzz_mime fuzz_lmtp fuzz_imap fuzz_dav fuzz_groupware; do \
	  mkdir -p build-fuzz/corpus-$$t; \
	  build-fuzz/$$t -max_total_time=$${FUZZ_SECONDS:-300} build-fuzz/corpus-$$t tests/fuzz/corpus/$$t || exit 1; \
	done

format:
	@find src apps tests bench -name '*.cc' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-fuzz
