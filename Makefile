# crane-formula: every target installs what it needs first.
SHELL := /bin/bash
PY := /usr/bin/python3
VENV := .venv
V3008 := $(VENV)/salt3008
V3006 := $(VENV)/salt3006
APT_PACKAGES := python3-venv systemd-container debootstrap dpkg-dev iproute2 rpm createrepo-c gcc libpam0g-dev
PYTEST_ARGS ?=

.PHONY: help deps venv lint test test-unit test-3006 test-3008 demo demo-down bench clean

help:
	@echo "make demo       boot a CraneSched test cluster and deploy it with the formula"
	@echo "make demo-down  tear the demo cluster down"
	@echo "make test       lint + the whole test suite (Salt 3006 LTS and 3008)"
	@echo "make lint       ruff, yamllint, salt-lint"
	@echo "make bench      benchmarks, printed as one table"

$(VENV)/.apt-done:
	@mkdir -p $(VENV)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

$(V3008)/.done: requirements/salt3008.txt $(VENV)/.apt-done
	rm -rf $(V3008) && $(PY) -m venv $(V3008)
	$(V3008)/bin/pip install -q --disable-pip-version-check -r $<
	@touch $@

$(V3006)/.done: requirements/salt3006.txt $(VENV)/.apt-done
	rm -rf $(V3006) && $(PY) -m venv $(V3006)
	$(V3006)/bin/pip install -q --disable-pip-version-check -r $<
	@touch $@

deps: $(VENV)/.apt-done
venv: $(V3008)/.done $(V3006)/.done

lint: $(V3008)/.done
	$(V3008)/bin/ruff check salt tests bench
	$(V3008)/bin/ruff format --check salt tests bench
	$(V3008)/bin/yamllint -s .
	find salt/states salt/reactor pillar -name '*.sls' -print0 | xargs -0 -r $(V3008)/bin/salt-lint

# Unit, functional and render tests on the LTS release.
test-3006: $(V3006)/.done
	$(V3006)/bin/python -m pytest -p no:cacheprovider tests/unit tests/functional tests/render $(PYTEST_ARGS)

# Everything on the current release, the cluster tests included; the 25 slowest tests are
# listed so a CI log shows where the time goes.  No test collected (exit 5) fails the target.
test-3008: $(V3008)/.done
	$(V3008)/bin/python -m pytest -p no:cacheprovider --durations=25 tests $(PYTEST_ARGS)

# The LTS run (one core, a few minutes) goes beside the Salt 3008 run, in a temporary directory
# of its own (tests look for files they leave behind there); its output follows the 3008 run's,
# and either run failing fails the target.
test: lint $(V3006)/.done $(V3008)/.done
	@tmp=$$(mktemp -d); \
	TMPDIR=$$tmp $(MAKE) --no-print-directory test-3006 >$$tmp.log 2>&1 & lts=$$!; \
	$(MAKE) --no-print-directory test-3008; rc=$$?; \
	wait $$lts; lts_rc=$$?; \
	echo "==> Salt 3006, run beside Salt 3008 (exit $$lts_rc)"; cat $$tmp.log; \
	rm -rf $$tmp $$tmp.log; \
	[ $$rc -eq 0 ] && [ $$lts_rc -eq 0 ]

demo: $(V3008)/.done
	$(V3008)/bin/python -m tests.cluster.demo up

demo-down: $(V3008)/.done
	$(V3008)/bin/python -m tests.cluster.demo down

bench: $(V3008)/.done
	$(V3008)/bin/python -m bench

clean:
	rm -rf $(VENV)
