# The two commands: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Debian packages: python3-venv for a fresh machine; chromium for the console's browser tests.
DEBIAN_RUN := ca-certificates
DEBIAN_TEST := chromium fonts-dejavu-core
# Fax: ghostscript renders PDFs into fax pages; libspandsp2 is the fax engine (T.30, T.38).
DEBIAN_RUN += ghostscript libspandsp2
DEBIAN_TEST += ghostscript libspandsp2
# Fax: HylaFAX's hfaxd/faxq, started by the HylaFAX line's tests on a private spool.
DEBIAN_TEST += hylafax-server
# SIP: kamailio is the registrar the SIP core's tests start on 127.0.0.1 (tests/sip/kamailio.py).
DEBIAN_TEST += kamailio
# PostgreSQL store: the tests start their own server from Debian's initdb/pg_ctl.
DEBIAN_TEST += postgresql
# SIP line: kamailio's presence server for BLF, baresip phones and sipp carriers/clients.
DEBIAN_TEST += kamailio-presence-modules baresip sip-tester

.PHONY: run test bench clean deps-run deps-test vendor

$(PY):
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || ./scripts/debian-deps.sh python3-venv python3-pip
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

deps-run:
	@./scripts/debian-deps.sh $(DEBIAN_RUN)

deps-test:
	@./scripts/debian-deps.sh $(DEBIAN_TEST)

# The console's charting library (Chart.js + its matrix plugin), pinned and checked by sha512.
vendor:
	@$(PYTHON) scripts/fetch_vendor.py

run: deps-run $(STAMP) vendor
	$(VENV)/bin/callcenter serve --demo $(ARGS)

test: deps-test $(STAMP) vendor
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/lookup.py
	$(PY) benchmarks/ami_ingest.py
	$(PY) benchmarks/screenpop_latency.py
	$(PY) -m benchmarks.ws_fanout
	$(PY) -m benchmarks.screenpop_e2e
	$(PY) benchmarks/api_models.py
	$(PY) benchmarks/fax_convert.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
