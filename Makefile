# deepbatch developer commands. Real test assets live in ../shared (see tests/README.md); without them the demo runs
# on the photos in samples/ and downloads the default models, and the tests that need the assets skip.
PYTHON ?= python3
SHARED ?= $(abspath ../shared)
export DEEPBATCH_WEIGHTS ?= $(SHARED)/weights
export DEEPBATCH_TEST_DATA ?= $(SHARED)/dataset
DEMO_PHOTOS ?= $(if $(wildcard $(DEEPBATCH_TEST_DATA)/*.jpg),$(DEEPBATCH_TEST_DATA),samples)

# pip does not swap one distribution for another: where deepbatch's runtime is onnxruntime-gpu (Linux x86_64), a
# CPU-only onnxruntime left from an earlier install would overwrite its files, so both go and the right one returns.
ONE_RUNTIME = if [ "$$(uname -sm)" = "Linux x86_64" ] && $(PYTHON) -m pip show -q onnxruntime 2>/dev/null; then \
	$(PYTHON) -m pip uninstall -q -y onnxruntime onnxruntime-gpu; fi

.PHONY: install install-test install-bench demo test test-intro test-fast lint bench bench-stream test-data bench-gpu docs install-docs docs-tables

install:
	@$(ONE_RUNTIME)
	$(PYTHON) -m pip install -q -e .

install-test:
	@$(ONE_RUNTIME)
	@# the plain `ultralytics` once installed here writes the same package as the yolo extra's headless build
	@if $(PYTHON) -m pip show -q ultralytics 2>/dev/null; then \
		$(PYTHON) -m pip uninstall -q -y ultralytics ultralytics-opencv-headless; fi
	$(PYTHON) -m pip install -q -e ".[dev]"
	$(PYTHON) -m pip install -q -e ".[yolo,mtcnn,dlib]"
	$(PYTHON) -m pip install -q -e ".[fastmtcnn,find]"
	$(PYTHON) -m pip install -q -e ".[serve,serve-test,serve-ray]"
	@# the page test's headless browser, where this runs as root on a system with apt (elsewhere that test skips)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && ! command -v chromedriver >/dev/null 2>&1; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		echo "chromium could not be installed: the page test of deepbatch serve will skip"; fi
	$(PYTHON) -m pip install -q -e ".[database]"
	$(PYTHON) -m pip install -q --no-deps "facenet-pytorch>=2.5"
	$(PYTHON) -m pip install -q -e ".[insightface]"
	$(PYTHON) -m pip install -q --no-deps "insightface>=0.7.3"
	@# DeepFace's recognition models (the deepface extra): deepface and tf-keras without their dependencies, as
	@# install-bench installs them; tf-keras at the installed TensorFlow's version
	$(PYTHON) -m pip install -q -e ".[deepface]"
	$(PYTHON) -m pip install -q --no-deps "deepface>=0.0.93" \
		"tf-keras==$$($(PYTHON) -c 'import tensorflow as tf; print(tf.__version__.rsplit(".", 1)[0])').*"
	$(PYTHON) -m pip install -q -e ".[docs]"

demo: install
	deepbatch detect $(DEMO_PHOTOS) --output out/faces.jsonl --draw out/annotated
	deepbatch represent $(DEMO_PHOTOS) --output out/embeddings.jsonl

# Said before anything is installed: what the install costs and which test assets are here (pytest then counts the
# tests that skip for each missing one, and lists every skip by reason at the end). Measured into a fresh virtualenv.
WEIGHTS_NOTE = $(if $(wildcard $(DEEPBATCH_WEIGHTS)/scrfd_500m_kps.onnx),found,not found (set DEEPBATCH_WEIGHTS))
PHOTOS_NOTE = $(if $(wildcard $(DEEPBATCH_TEST_DATA)/couple.jpg),found,not found (make test-data fetches some))
ASSET_NOTE = test weights $(WEIGHTS_NOTE), test photos $(PHOTOS_NOTE): the tests that need a missing one skip

test-intro:
	@echo "make test: installs deepbatch with every test extra (torch, TensorFlow, Ray, ultralytics, dlib: about \
	$(TEST_INSTALL_SIZE) and $(TEST_INSTALL_TIME) into a fresh environment, seconds once installed), then runs every test."
	@echo "make test: $(ASSET_NOTE); nothing is downloaded by the tests."

TEST_INSTALL_SIZE = 8.4 GB
TEST_INSTALL_TIME = 10 to 50 minutes (pip cache, machine load)

# Four pytest processes, so that the models, ONNX sessions and frameworks one group of test files loads are freed
# before the next: in one process the whole suite grows past 20 GB. Each group prints its own summary; every group
# runs, and the target fails if any did.
TEST_GROUPS = a-e f-o p-r s-z

test: test-intro install-test
	@status=0; for group in $(TEST_GROUPS); do \
		echo "make test: tests/test_[$$group]*.py"; \
		$(PYTHON) -m pytest -q tests/test_[$$group]*.py || status=1; \
	done; exit $$status

# The inner loop: the core API on ONNX Runtime and OpenCV, without the slow tests and without torch, TensorFlow or
# Ray (the `heavy` tests); a few minutes on 2 cores.
test-fast:
	@echo "make test-fast: installs deepbatch with pytest and hypothesis (about 650 MB into a fresh environment), then \
	runs the tests that are neither slow nor heavy; $(ASSET_NOTE)."
	$(PYTHON) -m pip install -q -e ".[test]"
	$(PYTHON) -m pytest -q -m "not slow and not heavy"

lint: install-test
	ruff check deepbatch tests tools
	mypy deepbatch

# DeepFace goes in for the side-by-side benchmark without its dependencies (opencv-contrib-python-headless would
# clash with opencv-python-headless; the bench extra holds what its detection path imports); tf-keras follows the
# installed TensorFlow's version, so no TensorFlow is installed or replaced.
install-bench: install
	$(PYTHON) -m pip install -q -e ".[bench]"
	$(PYTHON) -m pip install -q --no-deps "insightface>=0.7.3"
	$(PYTHON) -m pip install -q --no-deps "deepface>=0.0.93" \
		"tf-keras==$$($(PYTHON) -c 'import tensorflow as tf; print(tf.__version__.rsplit(".", 1)[0])').*"

bench: install-bench
	$(PYTHON) benchmarks/bench_detector.py --backend scrfd --batch-sizes 1,8,16,32 --input-size 640 --images 500 \
		--reference insightface --breakdown --data $(DEEPBATCH_TEST_DATA)
	$(PYTHON) benchmarks/backend_table.py --photos $(DEEPBATCH_TEST_DATA)
	$(PYTHON) benchmarks/verify_master.py
	mkdir -p out
	$(PYTHON) benchmarks/peers.py --photos $(DEEPBATCH_TEST_DATA) --rounds 5 --json out/peers.json

bench-stream: install
	$(PYTHON) benchmarks/bench_streaming.py --compare 500,10000 --data $(DEEPBATCH_TEST_DATA)

test-data:
	$(PYTHON) tests/fetch_test_data.py

# The one-shot GPU table. On a machine with nvidia-smi, `--install` first adds what this Python lacks: onnxruntime-gpu
# with its CUDA and cuDNN wheels (in place of onnxruntime), the TensorRT wheel that build loads, torch/torchvision
# for GPU JPEG decoding; all downloaded before anything is removed (offline: WHEELS=folder of wheels). Elsewhere it
# runs the CPU part and says the GPU part was skipped.
bench-gpu:
	@$(PYTHON) -c "import deepbatch" 2>/dev/null || $(PYTHON) -m pip install -q -e .
	mkdir -p out
	$(PYTHON) benchmarks/bench_gpu.py --install $(if $(WHEELS),--wheels $(WHEELS)) --data $(DEEPBATCH_TEST_DATA) \
		--json out/bench_gpu.json

docs-tables:
	$(PYTHON) tools/docs_tables.py

# The documentation site (docs/, mkdocs.yml; the API reference from the docstrings) into site/: strict, so a broken
# link, a missing page or a docstring that does not parse fails the build. Nothing is fetched while building.
install-docs:
	$(PYTHON) -m pip install -q -e ".[docs]"

docs: install-docs
	$(PYTHON) tools/docs_tables.py --check
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict --site-dir site
