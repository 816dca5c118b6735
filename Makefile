# Fulcrum: `make demo` and `make test` work on a fresh machine with only python3.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install demo test bench bench-peers clean

install: $(STAMP)

# torch first and pinned: 2.13.0 is a CPU build on this machine's disk; an
# unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m fulcrum.cli.demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

# AutoML peers for benchmarks/bench_automl.py in their OWN virtualenv, never in Fulcrum's
# dependencies. torch==2.13.0 (the CPU wheel on disk) first, so AutoGluon's fastai extra
# resolves against it instead of pulling a CUDA build; benchmarks/peers/requirements.txt says why
# each line is there. Prints how long the install took.
PEERS_VENV ?= .venv-peers
PEERS_STAMP = $(PEERS_VENV)/.installed

bench-peers: $(PEERS_STAMP)

$(PEERS_STAMP): benchmarks/peers/requirements.txt
	@start=$$(date +%s); \
	$(PYTHON) -m venv $(PEERS_VENV) && \
	$(PEERS_VENV)/bin/python -m pip install -q torch==2.13.0 && \
	$(PEERS_VENV)/bin/python -m pip install -q -r benchmarks/peers/requirements.txt && \
	$(PEERS_VENV)/bin/python benchmarks/peers/run_peer.py --check && \
	echo "bench-peers: installed in $$(( $$(date +%s) - start )) s into $(PEERS_VENV)"
	touch $(PEERS_STAMP)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
