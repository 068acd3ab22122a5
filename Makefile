# The two commands a user needs: `make demo` and `make test`. Each sets itself up (scripts/bootstrap.sh).
SHELL := /bin/bash
ENV := . scripts/env.sh &&

.PHONY: setup test demo clean
setup:
	@bash scripts/bootstrap.sh

test: setup
	@$(ENV) python -m pytest -q tests

demo: setup
	@$(ENV) python -m yolz_ros.demo

clean:
	rm -rf build build.log .venv
