# Quick start: `make demo` then `make test`. Both create .venv and install the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo docs test test-slow lint bench clean

# The demo search: `make demo` runs it, `make docs` commits it as docs/example-run (and
# tests/test_docs.py checks that the committed run's config is what these flags write today).
DEMO := layer-skip --dataset mnist5k --epochs 60 --lam 4 --theta-lr 0.064 --theta-min 0.005 --seed 0

# torch/torchvision are pinned exactly in constraints.txt (pyproject keeps lower bounds).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]' 2>&1 \
		| grep -v "is ignored: it is neither a file nor a directory" || true
	@$(BIN)/python -c "import bayesnas, torch, pyro" || (echo "install failed" >&2; exit 1)
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bayesnas search $(DEMO) --out runs/demo
	$(BIN)/bayesnas report runs/demo

# docs/example-run and every README figure from today's code (timings are this machine's).
docs: $(STAMP)
	$(BIN)/python docs/regenerate.py --demo "$(DEMO)"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check bayesnas models guides experiments benchmarks tests

bench: $(STAMP)
	$(BIN)/python benchmarks/step_time.py

clean:
	rm -rf $(VENV) runs
