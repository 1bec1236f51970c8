# The two commands a lab user needs (see README):
#   make demo   - run the live pipeline on the bundled model and real video
#   make test   - run the whole test suite
# Each creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_RUN  := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test clean-venv c-example-deps

# System libraries the C subscriber example's test builds against (tests/test_zmq_examples.py).
# Installed with apt-get when make runs as root on Debian/Ubuntu (CI, a fresh rig PC set up as
# root); otherwise make says which packages to install and that one test skips, naming them.
C_EXAMPLE_PKGS := pkg-config libzmq3-dev libmsgpack-dev

# Quiet installs. setuptools prints an "Editable installation" notice (be careful
# with folders named like the package in the working directory) for every
# editable install of a package with mapped folders, like rtpose.exporters ->
# exporters/: informational, nothing to act on, so it alone is filtered out.
PIP_INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip

$(STAMP_RUN): pyproject.toml setup.py | $(PY)
	$(PIP_INSTALL) -e '.[cpu,plot]'
	touch $@

$(STAMP_TEST): pyproject.toml setup.py | $(PY)
	$(PIP_INSTALL) -e '.[cpu,plot,export,export-torch,basler,genicam,lsl,cluster,test]'
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(VENV)/bin/rtpose demo

c-example-deps:
	@if command -v cc >/dev/null && pkg-config --exists libzmq 2>/dev/null && \
	   (pkg-config --exists msgpack 2>/dev/null || pkg-config --exists msgpack-c 2>/dev/null); then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing the C example's build dependencies: $(C_EXAMPLE_PKGS)"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(C_EXAMPLE_PKGS) >/dev/null; \
	else echo "note: tests/test_zmq_examples.py::test_c_subscriber_example needs a C compiler and $(C_EXAMPLE_PKGS) (sudo apt-get install $(C_EXAMPLE_PKGS)); without them it skips" >&2; fi

# Two pytest processes (pytest-xdist), each test file kept whole in one of them (its module fixtures are
# built once). Measured on 2 cores: 16.5 min in one process, 13 min in two. `make test TEST_WORKERS=0`
# runs everything in one process; PYTEST_ARGS come last and win.
TEST_WORKERS ?= 2

# pytest exits 5 when it collects no tests: that is a failure here, with a message.
test: $(STAMP_TEST) c-example-deps
	@$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: the suite must never be empty" >&2; exit 1; fi; \
	exit $$status

clean-venv:
	rm -rf $(VENV)
