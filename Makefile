# shelfwise: `make demo` and `make test` set up a fresh machine (idempotently) and run.
.PHONY: setup pkg bundle demo test test-browsers soak fuzz bench bench-web clean

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

# The session-store tests in Firefox ESR and WebKitGTK (Safari's engine): installs both (apt, geckodriver
# from crates.io) the first time; runs on the quick bundle `make test` builds. Not in `make test`, to keep
# that under 30 minutes on a fresh machine.
test-browsers: pkg
	bash scripts/setup-browsers.sh
	node tests/e2e/store-browsers.mjs --browser firefox --bundle cache/golden/bundle
	xvfb-run -a node tests/e2e/store-browsers.mjs --browser webkit --bundle cache/golden/bundle

# The 30-minute soak on the demo bundle (two tabs, 50 events/s each; docs/RELIABILITY.md).
soak: pkg
	bash scripts/demo-bundle.sh
	node scripts/soak.mjs --minutes 30 --bundle www/ml100k

# The long fuzz campaigns: every target for 10 million executions (docs/RELIABILITY.md, fuzz/README.md).
fuzz: setup
	bash scripts/fuzz.sh --runs 10000000

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
