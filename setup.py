from pathlib import Path

from setuptools import find_packages, setup

# The manual (docs/): Sphinx with Markdown pages, the notebooks' stored outputs, numpydoc and the parser's page.
DOCS = ["sphinx>=8", "myst-parser>=4", "myst-nb>=1.1", "numpydoc>=1.8", "sphinx-argparse>=0.5",
        "pydata-sphinx-theme>=0.16"]

setup(
    name="automm_lite",
    version="0.1.0",
    description="Small, fast AutoML predictors for text, image and tabular data, with knowledge distillation",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["automm_lite", "automm_lite.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.2",
        "torchvision>=0.17",
        "timm>=1.0",
        "transformers>=4.56,<6",
        "peft>=0.10",  # optimization.peft: LoRA / IA3 adapters on the text encoder (merged after the fit)
        "lightning>=2.2,<3",
        "numpy>=1.24",
        "pandas>=2.2",
        "pyarrow>=14",
        "scikit-learn>=1.3",
        "scipy>=1.10",
        "lightgbm>=4.0",
        "datasets>=2.18",
        "safetensors>=0.4",
        "filelock>=3.12",  # the conversion cache shared between processes: one converts, the others wait
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "onnx>=1.15",
        "optuna>=4.9",  # heartbeats with a retry of a dead worker's trial (shared studies)
        "matplotlib>=3.8",
    ],
    extras_require={
        # The tutorials run as tests: a Jupyter kernel and a notebook runner; property tests of the data layer;
        # a time limit on the tests that start processes; the shared-study tests' database driver; the Ray tests;
        # the manual, which the tests build.
        "dev": ["pytest>=7", "nbmake>=1.5", "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29",
                "hypothesis>=6.100", "pytest-timeout>=2.2", "psycopg[binary]>=3.1", "ray[tune,data]>=2.40"] + DOCS,
        "docs": DOCS,
        "onnx": ["onnxruntime>=1.17"],
        "postgres": ["psycopg[binary]>=3.1"],  # a search's study shared through PostgreSQL
        "ray": ["ray[tune,data]>=2.40"],  # searches and batch predictions on a Ray cluster
    },
    entry_points={"console_scripts": ["automm-lite=automm_lite.cli:main"]},
)
