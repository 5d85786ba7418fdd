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

demo: build
	bash examples/demo.sh

test: build
	$(MESON) test -C build --print-errorlogs

bench: build
	bash bench/run.sh

clean:
	rm -rf build
