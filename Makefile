# shelfwise: `make demo` and `make test` set up a fresh machine (idempotently) and run.
.PHONY: setup pkg bundle demo test bench bench-web clean

setup:
	bash scripts/setup.sh

pkg: setup
	bash scripts/build-pkg.sh

bundle:
	bash scripts/bundle.sh www/bundle 100000 64

# Builds the wasm package and the 100k-item synthetic bundle, then serves the demo on localhost.
demo: pkg bundle
	node scripts/serve.mjs --port $${PORT:-8080}

# Every test: fmt, clippy (host + wasm32), native tests with GPU parity, browser tests in both modes.
test: setup
	bash scripts/test.sh

# Native criterion benchmarks (medians and ratios against baselines in the same run).
# Native criterion benchmarks: ranking (100k and 1M items), then all-MiniLM-L6-v2 against candle.
bench:
	cargo bench --bench rank
	bash scripts/fetch-models.sh
	cargo bench -p shelfwise-cli --bench minilm

# The browser benchmark pages, headless: ranking at 100k and 1M items (CPU path against plain JS and a
# memcpy floor), then all-MiniLM-L6-v2 (load, first embedding, steady state; plain-JS baseline).
bench-web: pkg bundle
	bash scripts/bundle.sh target/bench-1m 1048576 64
	node scripts/bench-web.mjs

clean:
	rm -rf pkg www/bundle target
