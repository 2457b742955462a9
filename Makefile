# deepbatch developer commands. Real test assets live in ../shared (see tests/README.md).
PYTHON ?= python3
SHARED ?= $(abspath ../shared)
export DEEPBATCH_WEIGHTS ?= $(SHARED)/weights
export DEEPBATCH_TEST_DATA ?= $(SHARED)/dataset

.PHONY: install install-test demo test lint bench test-data

install:
	$(PYTHON) -m pip install -q -e .

install-test:
	$(PYTHON) -m pip install -q -e ".[dev]"
	$(PYTHON) -m pip install -q -e ".[yolo,mtcnn]"
	$(PYTHON) -m pip install -q --no-deps "ultralytics>=8.3"

demo: install
	deepbatch detect $(DEEPBATCH_TEST_DATA) --output out/faces.jsonl --draw out/annotated

test: install-test
	$(PYTHON) -m pytest -q

lint: install-test
	ruff check deepbatch tests
	mypy deepbatch

bench: install-test
	$(PYTHON) benchmarks/bench_detection.py

test-data:
	$(PYTHON) tests/fetch_test_data.py
