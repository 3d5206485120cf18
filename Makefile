# The two commands of the README: `make app` (set up and start the dashboard) and `make test`.
VENV := .venv
PYTHON := $(VENV)/bin/python
PORT ?= 8501

.PHONY: app test setup setup-dev browser lint clean

$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

# Debian's Chromium drives the real-browser tests through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# The stats command fills the shipped sample's Parquet cache and, the first time on a machine, leaves
# the JVM's class archive that halves Spark's start (once: later runs find both). `serve` is
# `streamlit run streamlit_app.py` that starts Spark, the data and TensorFlow with the server.
app: setup
	$(PYTHON) -m fer_core stats > /dev/null
	$(PYTHON) -m fer_core serve --port $(PORT)

test: setup-dev browser
	$(PYTHON) -m pytest

lint: setup-dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf .cache runs .pytest_cache
