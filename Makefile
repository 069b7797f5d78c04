# agechat — the two commands that matter: `make demo` and `make test`. Both set up what they need.
SHELL := /bin/bash

.PHONY: setup build test demo live bench lock clean help

help:
	@echo "make demo   run the whole graph on the bundled bag, write the report to out/demo/"
	@echo "            (VOICES=DIR: build the bag from real recordings in DIR/manifest.csv)"
	@echo "make live   talk to it: the whole graph on this machine's microphone, camera and speaker"
	@echo "            (ARGS='camera_device:=/dev/video2 ...': launch arguments)"
	@echo "make test   set up (idempotent) and run every test"
	@echo "make bench  run every node's benchmark, write JSON to out/bench/"
	@echo "make setup  install Debian packages, the .venv, and colcon-build the workspace"
	@echo "make lock   re-pin requirements.txt from the current .venv (after editing its direct section)"

setup:
	@bash scripts/setup.sh

build: setup

test: setup
	@bash scripts/run_tests.sh

demo: setup
	@bash scripts/run_demo.sh $(if $(VOICES),--voices "$(VOICES)")

live: setup
	@bash scripts/run_live.sh $(ARGS)

bench: setup
	@bash scripts/run_bench.sh

lock:
	@.venv/bin/python scripts/lock_requirements.py

clean:
	rm -rf build install log out
