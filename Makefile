# Two commands do all the set-up on a fresh machine with nothing but Python 3.11:
#   make book [PROFILE=cpu|smoke|paper]   execute the chapters with papermill, build _build/html
#   make test                             unit tests, smoke book, nbval on it, smoke HTML
PROFILE ?= cpu
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book test venv unit smoke nbval clean

venv: $(STAMP)

# The venv is rebuilt when the dependencies change. torch/torchvision are pinned in pyproject.toml.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --quiet --disable-pip-version-check -e '.[book,test]'
	$(PY) -m ipykernel install --sys-prefix --name emorec --display-name emorec > /dev/null
	touch $@

book: $(STAMP)
	$(PY) -m emorec.book --profile $(PROFILE) --publish

unit: $(STAMP)
	$(PY) -m pytest tests -q

smoke: $(STAMP)
	$(PY) -m emorec.book --profile smoke

# nbval re-executes the executed smoke notebooks and compares the cells tagged nbval-check-output.
nbval: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-kernel-name emorec \
		--nbval-cell-timeout 600 _build/smoke/book/chapters

test: $(STAMP)
	$(MAKE) unit
	$(MAKE) smoke
	$(MAKE) nbval

clean:
	rm -rf _build
