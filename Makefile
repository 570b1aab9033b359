# musiclord: `make demo` and `make test` are the two commands a new user needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
DEBS := libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont csound-soundfont
TEST_DEBS := chromium
RUN := runs/demo
# the shipped model's recipe: two more training banks for its erasure (OPL3 FM, freepats by TiMidity++)
QUALITY_DEBS := opl3-soundfont timidity freepats
QUALITY := runs/quality

.PHONY: setup test demo quality bench clean-demo

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

# `quality`: the data, the two extra banks and the shipped model's training, from scratch or from where a
# killed run stopped (a half-written dataset, without its dataset.json, is rendered again); 35.5 min in
# all on session 21's 2-core machine (docs/results.md, ablation 68)
quality: setup
	@bash scripts/install_debs.sh $(QUALITY_DEBS)
	@test -f $(QUALITY)/data/dataset.json || $(BIN)/musiclord prepare synth --force --out $(QUALITY)/data --cross-fraction 1
	@test -f $(QUALITY)/opl3/dataset.json || $(BIN)/musiclord prepare synth --force --out $(QUALITY)/opl3 \
		--rerender-soundfont /usr/share/sounds/sf2/OPL-3_FM_128M.sf2
	@test -f $(QUALITY)/freepats/dataset.json || $(BIN)/musiclord prepare synth --force --out $(QUALITY)/freepats \
		--rerender-soundfont /etc/timidity/freepats.cfg
	$(BIN)/musiclord train --data $(QUALITY)/data --out $(QUALITY)/run --config quality --resume \
		'amortized.erasure_banks=[$(QUALITY)/opl3,$(QUALITY)/freepats]'

bench: setup
	$(BIN)/python -m benchmarks.run_all

clean-demo:
	rm -rf $(RUN)
