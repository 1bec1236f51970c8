# The two commands a lab user needs (see README):
#   make demo   - run the live pipeline on the bundled model and real video
#   make test   - run the whole test suite
# Each creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_RUN  := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test clean-venv

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
	$(PIP_INSTALL) -e '.[cpu,plot,export,export-torch,test]'
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(VENV)/bin/rtpose demo

# pytest exits 5 when it collects no tests: that is a failure here, with a message.
test: $(STAMP_TEST)
	@$(PY) -m pytest -q $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: the suite must never be empty" >&2; exit 1; fi; \
	exit $$status

clean-venv:
	rm -rf $(VENV)
