# voucher-ledger: the two commands of the README's Quick start, and a few helpers.
#
#   make run    install missing system packages, build, serve on ./data at 127.0.0.1:50051
#   make test   install missing system packages, then every test
#
# Everything builds with the release profile so RocksDB (a 20-minute C++ build on two
# cores) is compiled once, not once per profile.

CARGO      ?= cargo
DATA_DIR   ?= ./data
LISTEN     ?= 127.0.0.1:50051
CONFIG     ?= config/server.toml

.PHONY: run test prerequisites build demo verify bench clippy fmt

prerequisites:
	@./scripts/prerequisites.sh

build: prerequisites
	$(CARGO) build --release --locked

run: build
	@echo "Serving $(DATA_DIR) on $(LISTEN). Development tokens: config/dev-tokens.txt (SM3 hashes in $(CONFIG)). Ctrl-C stops gracefully."
	$(CARGO) run --release --locked --quiet -- serve --data-dir $(DATA_DIR) --listen $(LISTEN) --config $(CONFIG)

test: prerequisites
	$(CARGO) test --release --locked --all-targets
	$(CARGO) test --release --locked --doc

demo: build
	$(CARGO) run --release --locked --quiet -- demo --data-dir $(DATA_DIR)

verify: build
	$(CARGO) run --release --locked --quiet -- verify --data-dir $(DATA_DIR)

bench: prerequisites
	$(CARGO) bench --locked

clippy:
	$(CARGO) clippy --release --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
