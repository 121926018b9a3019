# npystream: `make demo` and `make test` do everything on a fresh Debian 12.
SHELL     := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON    := /usr/bin/python3
BUILD     ?= build
JOBS      ?= $(shell nproc)
CMAKE_ARGS ?=
DEPS      ?= all
TARGETS   ?=
FUZZ_SECONDS ?= 20
export PYTHONPATH := $(CURDIR)/client/python$(if $(PYTHONPATH),:$(PYTHONPATH))
export PYTHONDONTWRITEBYTECODE := 1
# ccache hits across checkouts (CI builds a fresh clone in another folder):
# paths under the checkout are hashed relative to it, and the build folder is
# left out of the hash of debug builds.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
# make test SANITIZE=address|undefined|thread: the whole tree built that way
# in build-<sanitizer>/ (thread: with clang, as test-tsan), then the C++ suite
# and the pytest suite against it.
ifneq ($(SANITIZE),)
BUILD := build-$(SANITIZE)
override CMAKE_ARGS += -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNPYSTREAM_SANITIZE=$(SANITIZE) \
  -DNPYSTREAM_CUDA=OFF
TEST_STEPS := test-cpp test-python
export NPYSTREAM_SANITIZE := $(SANITIZE)
ifeq ($(SANITIZE),thread)
export CC := clang
export CXX := clang++
endif
# The C++ suite and the daemons pytest starts read these (the first report
# fails the run).
export ASAN_OPTIONS = $(ASAN_OPTIONS_ALL)
export UBSAN_OPTIONS = $(UBSAN_OPTIONS_ALL)
export TSAN_OPTIONS = $(TSAN_OPTIONS_ALL)
else
TEST_STEPS := lint typecheck docs test-cpp test-asan test-tsan fuzz test-python image-test
endif

export NPYSTREAM_BUILD := $(abspath $(BUILD))

.PHONY: all deps build test test-cpp test-asan test-tsan test-python fuzz demo bench soak clean format lint \
  image image-test dist typecheck docs

all: build

deps:
	@bash scripts/deps.sh $(DEPS)

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) $(if $(TARGETS),--target $(TARGETS))

test: build
	$(MAKE) --no-print-directory $(TEST_STEPS)

# Style and a short list of clang-tidy checks (.clang-tidy says why each).
# Production sources only; tests follow the format but not the tidy list.
CXX_SOURCES = $(shell git ls-files '*.cc' '*.h' 2>/dev/null)
# (Not the files only fuzz and TSan builds compile: no compile command here.)
TIDY_SOURCES = $(filter-out %_test.cc %_fuzz.cc server/testing/engine_fuzz_env.cc \
  server/testing/tsan_%,$(filter %.cc,$(CXX_SOURCES)))
lint: build
	@clang-format --dry-run -Werror $(CXX_SOURCES)
	@printf '%s\n' $(TIDY_SOURCES) | xargs -P $(JOBS) -n 4 clang-tidy -p $(BUILD) --quiet 2>&1 \
	  | { grep -E '(warning|error):' || true; } > $(BUILD)/tidy.log
	@if [ -s $(BUILD)/tidy.log ]; then cat $(BUILD)/tidy.log; exit 1; fi
	@echo "lint: clang-format and clang-tidy clean ($(words $(TIDY_SOURCES)) sources)"

# The Python client's type hints (client/python/pyproject.toml [tool.mypy]:
# --strict; grpcio and the generated stubs are untyped, so Any).
typecheck:
	cd client/python && mypy

# The API reference, every warning an error: Sphinx (autodoc of the Python
# client, the protos rendered by docs/_ext/protodoc.py) and Doxygen for the
# C++ client header, into $(BUILD)/docs (open index.html).
DOCS_OUT = $(abspath $(BUILD))/docs
docs: build
	@rm -rf $(DOCS_OUT) $(DOCS_OUT)-doctrees
	$(PYTHON) -m sphinx -W --keep-going -q -b html -d $(DOCS_OUT)-doctrees docs $(DOCS_OUT)
	NPYSTREAM_DOCS_OUT=$(DOCS_OUT) doxygen docs/Doxyfile
	@echo "docs: $(DOCS_OUT)/index.html (C++: $(DOCS_OUT)/cpp/index.html)"

test-cpp:
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure --timeout 600

# The whole tree under AddressSanitizer + UBSan (Debug; LeakSanitizer on at
# exit; the first UBSan report fails its test) and the whole C++ suite in it.
# `make test SANITIZE=address` also runs the pytest suite against that daemon.
ASAN_OPTIONS_ALL := detect_leaks=1
UBSAN_OPTIONS_ALL := halt_on_error=1:print_stacktrace=1
SANITIZER_ENV = ASAN_OPTIONS=$(ASAN_OPTIONS_ALL) UBSAN_OPTIONS=$(UBSAN_OPTIONS_ALL) \
  TSAN_OPTIONS="$(TSAN_OPTIONS_ALL)"
test-asan:
	@test -f $(BUILD)-asan/build.ninja || cmake -S . -B $(BUILD)-asan -G Ninja \
	  -DCMAKE_BUILD_TYPE=Debug -DNPYSTREAM_SANITIZE=ON -DNPYSTREAM_CUDA=OFF $(CMAKE_ARGS) > /dev/null
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && $(SANITIZER_ENV) ctest -j $(JOBS) --output-on-failure --timeout 900

# The whole tree under ThreadSanitizer (clang) and the whole C++ suite in it:
# the store, the staging ring, subscriptions, the batcher, the call gate and
# the gRPC services driven by real clients. Debian's abseil and gRPC are not
# TSan-annotated; server/testing/tsan_absl.cc and tsan_grpc.cc add the
# annotations (linked into every executable of a TSan build; tsan_shims_test
# shows they order what is ordered and still let races through).
# Suppressions, third-party code only, each with its reason: tests/tsan.supp.
TSAN_OPTIONS_ALL := halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp
test-tsan:
	@test -f $(BUILD)-tsan/build.ninja || CC=clang CXX=clang++ cmake -S . -B $(BUILD)-tsan -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNPYSTREAM_SANITIZE=thread -DNPYSTREAM_CUDA=OFF $(CMAKE_ARGS) > /dev/null
	cmake --build $(BUILD)-tsan -j $(JOBS)
	cd $(BUILD)-tsan && $(SANITIZER_ENV) ctest -j $(JOBS) --output-on-failure --timeout 900

# playwright-core (pinned in tests/browser/package-lock.json) drives Debian's
# chromium in the dashboard test; it never downloads a browser.
BROWSER_DEPS := tests/browser/node_modules/.package-lock.json
$(BROWSER_DEPS): tests/browser/package-lock.json
	cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error

# kubernetes-models (pinned in tests/k8s/package-lock.json): the manifests'
# offline schema check.
K8S_DEPS := tests/k8s/node_modules/.package-lock.json
$(K8S_DEPS): tests/k8s/package-lock.json
	cd tests/k8s && npm ci --no-audit --no-fund --loglevel=error

# TypeScript (pinned in tests/js-types/package-lock.json): type-checks an
# example against the packed JS package (tests/test_js.py).
TYPES_DEPS := tests/js-types/node_modules/.package-lock.json
$(TYPES_DEPS): tests/js-types/package-lock.json
	cd tests/js-types && npm ci --no-audit --no-fund --loglevel=error

test-python: $(BROWSER_DEPS) $(K8S_DEPS) $(TYPES_DEPS)
	$(PYTHON) -m pytest -q -p no:cacheprovider --ignore=tests/image tests/

# libFuzzer targets, built by CMake with clang in their own tree, each run
# for FUZZ_SECONDS from its committed seeds (tests/fuzz/corpus/<target>/) plus
# what earlier runs found ($(BUILD)-fuzz/corpus/<target>/). A crash fails the
# run and leaves its input in $(BUILD)-fuzz/<target>.log's directory.
FUZZERS := npy_parser_fuzz http_request_fuzz model_config_fuzz daemon_config_fuzz put_assembly_fuzz \
  oip_rest_fuzz infer_request_fuzz model_infer_fuzz admin_socket_fuzz socket_fetch_fuzz \
  view_spec_fuzz
# Inputs of these carry whole demo-model tensors (3 KiB a row): 16 KiB, not 4.
# admin_socket_fuzz and socket_fetch_fuzz run without libFuzzer's per-input
# leak check: the daemon's threads free a connection after the exchange
# returns, so every
# input looked like a leak and paid a full heap scan (26 instead of ~600
# inputs a second); LeakSanitizer still checks the whole suite in test-asan.
FUZZ_WHOLE_TENSORS := infer_request_fuzz model_infer_fuzz admin_socket_fuzz
fuzz:
	@test -f $(BUILD)-fuzz/build.ninja || CC=clang CXX=clang++ cmake -S . -B $(BUILD)-fuzz -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNPYSTREAM_FUZZ=ON -DNPYSTREAM_CUDA=OFF $(CMAKE_ARGS) > /dev/null
	cmake --build $(BUILD)-fuzz -j $(JOBS) --target fuzzers
	@for f in $(FUZZERS); do \
	  mkdir -p $(BUILD)-fuzz/corpus/$$f; \
	  case " $(FUZZ_WHOLE_TENSORS) " in *" $$f "*) len=16384;; *) len=4096;; esac; \
	  case $$f in admin_socket_fuzz|socket_fetch_fuzz) leaks=0;; *) leaks=1;; esac; \
	  (cd $(BUILD)-fuzz && bin/$$f -max_total_time=$(FUZZ_SECONDS) -max_len=$$len -detect_leaks=$$leaks \
	    -print_final_stats=1 \
	    corpus/$$f $(CURDIR)/tests/fuzz/corpus/$$f > $$f.log 2>&1) \
	    || { tail -n 40 $(BUILD)-fuzz/$$f.log; echo "fuzz: $$f failed"; exit 1; }; \
	  echo "fuzz: $$f $$(grep -E '^stat::number_of_executed_units' $(BUILD)-fuzz/$$f.log | \
	    awk '{print $$2}') executions in $(FUZZ_SECONDS) s, no crash"; \
	done

# 64 clients mixing every call for SOAK_SECONDS, then the daemon must have
# given back its memory, threads and fds (tests/soak.py; make test runs 60 s).
SOAK_SECONDS ?= 300
soak: build
	$(PYTHON) tests/soak.py --seconds $(SOAK_SECONDS) --build $(abspath $(BUILD))

# The container image (podman as root; base made by mmdebstrap when missing),
# then tests against the running container (tests/image/).
IMAGE ?= npystream:dev
image: deps
	bash scripts/image.sh $(IMAGE)

image-test: image
	NPYSTREAM_IMAGE=$(IMAGE) $(PYTHON) -m pytest -q -p no:cacheprovider tests/image/

demo: build
	$(PYTHON) scripts/demo.py --build $(BUILD)

bench: build
	$(PYTHON) bench/run.py --build $(BUILD) $(if $(QUICK),--quick,)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan $(BUILD)-fuzz

# A wheel of the Python client (stubs generated, native module compiled when
# gRPC's C++ development files are present): $(BUILD)/dist/.
dist:
	$(PYTHON) -m pip wheel --no-build-isolation --no-index --no-deps -w $(BUILD)/dist ./client/python
	rm -rf client/python/build client/python/*.egg-info
