# deepbatch developer commands. Real test assets live in ../shared (see tests/README.md).
PYTHON ?= python3
SHARED ?= $(abspath ../shared)
export DEEPBATCH_WEIGHTS ?= $(SHARED)/weights
export DEEPBATCH_TEST_DATA ?= $(SHARED)/dataset

.PHONY: install install-test install-bench demo test lint bench bench-stream test-data

install:
	$(PYTHON) -m pip install -q -e .

install-test:
	$(PYTHON) -m pip install -q -e ".[dev]"
	$(PYTHON) -m pip install -q -e ".[yolo,mtcnn,dlib]"
	$(PYTHON) -m pip install -q --no-deps "ultralytics>=8.3"
	$(PYTHON) -m pip install -q -e ".[fastmtcnn,find]"
	$(PYTHON) -m pip install -q --no-deps "facenet-pytorch>=2.5"

demo: install
	deepbatch detect $(DEEPBATCH_TEST_DATA) --output out/faces.jsonl --draw out/annotated

test: install-test
	$(PYTHON) -m pytest -q

lint: install-test
	ruff check deepbatch tests
	mypy deepbatch

install-bench: install
	$(PYTHON) -m pip install -q -e ".[bench]"
	$(PYTHON) -m pip install -q --no-deps "insightface>=0.7.3"

bench: install-bench
	$(PYTHON) -m deepbatch.bench --backend scrfd --batch-sizes 1,8,16,32 --input-size 640 --images 500 \
		--reference insightface --breakdown --data $(DEEPBATCH_TEST_DATA)
	$(PYTHON) benchmarks/backend_table.py --photos $(DEEPBATCH_TEST_DATA)
	$(PYTHON) benchmarks/verify_master.py

bench-stream: install
	$(PYTHON) benchmarks/bench_streaming.py --compare 500,10000 --data $(DEEPBATCH_TEST_DATA)

test-data:
	$(PYTHON) tests/fetch_test_data.py
