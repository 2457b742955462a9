"""deepbatch: batched face detection, alignment and embedding on ONNX Runtime."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version = {}
exec((HERE / "deepbatch" / "_version.py").read_text(), version)

EXTRAS = {
    "test": ["pytest>=7", "hypothesis>=6"],
    "dev": ["pytest>=7", "hypothesis>=6", "ruff>=0.4", "mypy>=1.8", "ray[data]>=2.55,<3", "pillow>=9"],
    "gpu": ["onnxruntime-gpu>=1.17"],
    # ultralytics itself is installed with `pip install --no-deps ultralytics`: it requires opencv-python, which
    # clashes with opencv-python-headless; these are the packages it really needs.
    "yolo": ["torch>=2.0", "torchvision>=0.15", "matplotlib>=3.3", "pillow>=7.1.2", "pyyaml>=5.3.1",
             "requests>=2.23", "psutil>=5.8", "polars>=0.20", "ultralytics-thop>=2.2.3",
             "onnxslim>=0.1.71"],  # ultralytics' ONNX exporter simplifies with it (the tests export models)
    "mtcnn": ["mtcnn>=1.0", "tensorflow-cpu>=2.12"],
    # a prebuilt dlib (the 'dlib' sdist compiles for many minutes), and the Dlib recognizer's weights
    "dlib": ["dlib-bin>=19.24", "face_recognition_models>=0.3"],
    # Ray Data brings pyarrow and pandas; Pillow is what ray.data.read_images decodes with. About 500 MB, 30 s.
    "ray": ["ray[data]>=2.55,<3", "pyarrow>=15", "pillow>=9"],
    # The benchmark's InsightFace reference: insightface itself is installed with `pip install --no-deps
    # insightface` (it requires opencv-python, which clashes with opencv-python-headless); these are its real needs.
    # DeepFace (installed with --no-deps by `make install-bench`) also imports gdown, pandas and TensorFlow.
    "bench": ["requests>=2.23", "scipy>=1.9", "scikit-image>=0.19", "gdown>=3.10", "pandas>=1.3",
              "tensorflow-cpu>=2.12", "mtcnn>=1.0"],
    # find() returns pandas DataFrames when pandas is installed, plain dicts otherwise.
    "find": ["pandas>=1.5"],
    # the command line's --output X.parquet on this machine (--engine ray brings pyarrow with the ray extra)
    "parquet": ["pyarrow>=15"],
    # facenet-pytorch itself is installed with `pip install --no-deps facenet-pytorch`: its metadata pins
    # torch<2.3, but it runs on current torch; these are the packages it really needs.
    "fastmtcnn": ["torch>=2.0", "torchvision>=0.15", "pillow>=9", "requests>=2.23"],
}

setup(
    name="deepbatch",
    version=version["__version__"],
    description="Find, align and embed faces in batches of images, fast, on GPU or CPU",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["deepbatch", "deepbatch.*"]),
    package_data={"deepbatch": ["py.typed"]},
    install_requires=[
        "numpy>=1.23",
        "opencv-python-headless>=4.8,<5",  # 4.x ships the Haar cascades the opencv backend uses; 5.x does not
        "onnxruntime>=1.16",
        "onnx>=1.14",
        "tqdm>=4.60",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["deepbatch=deepbatch.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
