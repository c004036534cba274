# ardm_trl developer commands. `make demo` and `make test` are the README's two quick-start commands:
# each creates (or reuses, if up to date) the virtualenv in .venv and then runs its job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RESEMBLYZER := resemblyzer==0.1.4

.PHONY: demo test test-slow docs chromium clean-venv

$(STAMP): pyproject.toml constraints.txt Makefile
	@echo ">>> setting up $(VENV) (python: $$($(PYTHON) --version))"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo ">>> installing ardm_trl[speech,dev,deepspeed] with the pinned stack in constraints.txt"
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[speech,dev,deepspeed]"
	@echo ">>> installing $(RESEMBLYZER) without its deps (its webrtcvad pin does not import here; webrtcvad-wheels replaces it)"
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps $(RESEMBLYZER)
	@touch $(STAMP)
	@echo ">>> $(VENV) is ready"

demo: $(STAMP)
	@echo ">>> running the VGPO demo: accelerate launch examples/vgpo.py (outputs in outputs/vgpo-demo)"
	$(BIN)/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no examples/vgpo.py

chromium:
	@# The browser test of the listening tool drives Debian's chromium (skipped, not failed, where it is missing).
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  echo ">>> installing Debian's chromium for the browser test" && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo ">>> chromium not installed: the browser test will be skipped"; }

test: $(STAMP) chromium
	@echo ">>> ruff check"
	$(BIN)/ruff check src tests examples benchmarks
	@echo ">>> pytest (fast suite; slow runs: make test-slow)"
	$(BIN)/python -m pytest tests -q
	@echo ">>> docs build (mkdocs; make docs is the strict build)"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build -q -d build/site

test-slow: $(STAMP)
	$(BIN)/python -m pytest tests -q -m slow

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d build/site

clean-venv:
	rm -rf $(VENV)
