# Two commands do all the set-up on a fresh machine with nothing but Python 3.11:
#   make book [PROFILE=cpu|smoke|paper]   execute the chapters with papermill, build _build/html
#   make test                             unit tests, smoke book, nbval on it, smoke HTML checked in chromium
#   make check-html [PROFILE=cpu]         check a built book's pages in headless chromium (emorec.bookcheck)
PROFILE ?= cpu
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

HTML := _build/$(PROFILE)/site/_build/html
CHROMIUM := /usr/bin/chromium

.PHONY: book test venv unit smoke nbval browser check-html clean

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

# Debian's chromium for the browser check (root on CI, sudo elsewhere); never a browser download.
browser: $(CHROMIUM)

$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo -E) apt-get install -y -qq chromium chromium-driver > /dev/null

# Every page of a built book in headless chromium: images, figures shown twice, links, console errors,
# tables or text wider than the column, machine paths; a screenshot per page in _build/<profile>/screens.
check-html: $(STAMP) browser
	$(PY) -m emorec.bookcheck $(HTML) --screens _build/$(PROFILE)/screens

test: $(STAMP) browser
	$(MAKE) unit
	$(MAKE) smoke
	$(MAKE) nbval
	$(MAKE) check-html PROFILE=smoke

clean:
	rm -rf _build
