# Two commands from a fresh Debian 12 machine:
#   make demo   installs what is missing, builds into build/, runs the main example
#   make test   builds and runs every test suite
MESON := .venv/bin/meson

.PHONY: all deps build demo test bench clean

all: build

deps: .deps/stamp
.deps/stamp: scripts/install-deps.sh requirements.txt
	bash scripts/install-deps.sh
	@mkdir -p .deps && touch $@

build/build.ninja: .deps/stamp
	$(MESON) setup build

build: build/build.ninja
	$(MESON) compile -C build

# The demo builds only its own targets (a few minutes on 2 cores); `make test`
# and `make build` build the rest (tests, benchmarks, the Python extension).
DEMO_TARGETS := examples/reshard_demo examples/train_lm cli/tessera

demo: build/build.ninja
	$(MESON) compile -C build $(DEMO_TARGETS)
	bash examples/demo.sh

test: build
	$(MESON) test -C build --print-errorlogs

bench: build
	bash bench/run.sh

clean:
	rm -rf build
