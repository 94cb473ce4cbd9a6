# shelfwise: `make demo` and `make test` set up a fresh machine (idempotently) and run.
.PHONY: setup pkg bundle demo test bench bench-web clean

setup:
	bash scripts/setup.sh

pkg: setup
	bash scripts/build-pkg.sh

# The ranking-engine page (www/engine.html) and the browser benchmarks use a synthetic 100k-item catalogue.
bundle:
	bash scripts/bundle.sh www/bundle 100000 64

# Builds the npm package and the MovieLens-100k bundle (www/ml100k, about 20 minutes the first time), then
# serves the demo storefront on localhost and prints its URL.
demo: pkg
	bash scripts/demo-bundle.sh
	node scripts/serve.mjs --port $${PORT:-8080} --open www/

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
	bash scripts/demo-bundle.sh
	bash scripts/bundle.sh target/bench-1m 1048576 64
	node scripts/bench-web.mjs

clean:
	rm -rf pkg www/bundle www/ml100k target
