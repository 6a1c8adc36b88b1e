# The two commands of the README: `make dev` and `make test`. Each installs
# what it needs first, so both work on a fresh machine.

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install frontend sdk-node ai-sdk-node ai-sdk-example system-deps dev test test-python test-frontend bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(STAMP)

# The React page; `spool dev` serves frontend/dist when it exists. Rebuilt
# only when its sources changed (npm ci only when the lock file did).
FRONTEND_SOURCES := $(filter-out %.test.ts,$(shell find frontend/src -type f 2>/dev/null)) \
	frontend/index.html frontend/package.json frontend/tsconfig.json frontend/vite.config.ts
NODE_STAMP := frontend/node_modules/.spool-installed

$(NODE_STAMP): frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

frontend/dist/index.html: $(NODE_STAMP) $(FRONTEND_SOURCES)
	cd frontend && npm run build
	touch $@

frontend: frontend/dist/index.html

# The official openai npm package, for tests/integration/test_openai_node.py.
sdk-node:
	cd tests/sdk-node && npm ci --no-audit --no-fund

# The `ai` npm package, for tests/integration/test_ai_sdk_node.py.
ai-sdk-node:
	cd tests/ai-sdk-node && npm ci --no-audit --no-fund

# The useChat example (examples/ai-sdk), built for tests/e2e/test_ai_sdk.py.
ai-sdk-example:
	cd examples/ai-sdk && npm ci --no-audit --no-fund && npm run build

# nginx and Chromium for the end-to-end tier (Debian packages; needs root).
system-deps:
	@scripts/system-deps

# `make dev PORT=9000` for another port than 8000. Ctrl-C stops it cleanly.
dev: install
	@$(MAKE) -s --no-print-directory frontend || echo "frontend build failed: serving the API only"
	@$(BIN)/spool dev $(if $(PORT),--port $(PORT))

test: install system-deps frontend sdk-node ai-sdk-node ai-sdk-example test-python test-frontend

# SPOOL_TEST_STRICT: a missing Redis fails the run instead of skipping tiers.
test-python: install
	SPOOL_TEST_STRICT=1 $(BIN)/pytest tests

test-frontend:
	@if [ -f frontend/package.json ]; then cd frontend && npm test; fi

bench: install
	$(BIN)/python -m bench

# Vercel's resumable-stream (Node 20, npm packages pinned by its lockfile): the
# `resumable` target of `python -m bench`, skipped with a message without it.
.PHONY: bench-peers
bench-peers:
	cd bench/peers/resumable-stream && npm ci --no-audit --no-fund

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist tests/sdk-node/node_modules test-artifacts \
		tests/ai-sdk-node/node_modules examples/ai-sdk/node_modules examples/ai-sdk/dist
