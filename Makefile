# musiclord: `make demo` and `make test` are the two commands a new user needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
DEBS := libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont csound-soundfont
TEST_DEBS := chromium
RUN := runs/demo

.PHONY: setup test demo bench clean-demo

setup: $(STAMP)

# Re-installs only when the project's dependencies change: a second `make setup` is a no-op.
$(STAMP): pyproject.toml
	@bash scripts/install_debs.sh $(DEBS)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile $(TORCH)
	$(BIN)/python -m pip install -q --no-compile -e '.[dev]' $(TORCH)
	@touch $(STAMP)

test: setup
	@bash scripts/install_debs.sh $(TEST_DEBS)
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/musiclord demo --out $(RUN)

bench: setup
	$(BIN)/python -m benchmarks.run_all

clean-demo:
	rm -rf $(RUN)
