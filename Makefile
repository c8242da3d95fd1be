# Orange3-DeepImage. `make install` then `make test`; see README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned to the builds this project is tested with.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install test docs wheel smoke-wheel demo tutorials lessons lesson1 lesson2 lesson3 lesson4 lesson5 canvas serve bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e '.[test,server,bench,doc,cluster]' PyQt6 $(TORCH)
	touch $@

test: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest tests

# The documentation site (doc/), warnings as errors; open doc/_build/html/index.html.
# Orange Canvas' widget help reads the same pages from there.
docs: install
	$(PY) -m sphinx -W --keep-going -b html doc doc/_build/html

# The wheel Orange's Add-ons dialog would install, in dist/, with the documentation
# site inside (the widgets' F1 help) and the lessons' digits.
wheel: docs
	rm -rf build
	DEEPIMAGE_REQUIRE_HELP=1 $(PY) -m pip wheel --no-deps -w dist .

# That wheel installed alone in a clean environment: widgets found by Orange, F1 help,
# each lesson's images (tools/smoke_wheel.sh; CI runs it).
smoke-wheel: docs
	PY=$(PY) tools/smoke_wheel.sh

# Headless main job: embed the sample photos with SqueezeNet on this computer.
demo: install
	$(VENV)/bin/deepimage models
	$(VENV)/bin/deepimage embed tutorials/sample-photos -o demo-embeddings.csv
	@echo "Wrote demo-embeddings.csv"

# The lessons' images (scikit-learn's digits, no download) in tutorials/digits, where
# the lessons' workflows look for them. They are committed and ship with the add-on:
# this writes them again (developers only).
tutorials: install
	$(PY) tutorials/make_digits.py
	$(PY) tutorials/make_cells.py

# Each lesson's scripted equivalent, headless (see tutorials/lesson*.md).
lesson1: install
	$(PY) tutorials/lesson1_clustering.py
lesson2: install
	$(PY) tutorials/lesson2_classification.py
lesson3: install
	$(PY) tutorials/lesson3_server.py
lesson4: install
	$(PY) tutorials/lesson4_segmentation.py
lesson5: install
	$(PY) tutorials/lesson5_labelling.py
lessons: lesson1 lesson2 lesson3 lesson4 lesson5

canvas: install
	$(PY) -m Orange.canvas

serve: install
	$(VENV)/bin/deepimage serve

bench: install
	$(PY) benchmarks/embed_speed.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache demo-embeddings.csv doc/_build

# The oldest versions setup.py accepts (.ci/minimum.txt: Orange 3.36.2 with PyQt5,
# orange-widget-base 4.22, numpy 1.24, ...) in their own environment, .venv-min: the
# whole suite less what depends on torch alone, which is the same version in both
# environments (the slow Grad-CAM training check, the two-process torchrun run), then
# the tests that load SqueezeNet's weights again on numpy 1.26 (the numpy Orange
# 3.36/3.37 installers bring), from an overlay so .venv-min stays as built.
VENV_MIN ?= .venv-min
PY_MIN := $(VENV_MIN)/bin/python
MINIMUM := .ci/minimum.txt
NUMPY_126 := $(VENV_MIN)/numpy-1.26
MIN_ENV := QT_QPA_PLATFORM=offscreen QT_API=pyqt5 DEEPIMAGE_MINIMUM_VERSIONS=1
NUMPY_126_TESTS := tests/core/test_weights.py tests/core/test_local_embedder.py \
	tests/train/test_onnx_export.py tests/server/test_live.py \
	tests/widgets/test_owimageembedder.py

.PHONY: install-minimum test-minimum

install-minimum: $(VENV_MIN)/.installed

$(VENV_MIN)/.installed: setup.py $(MINIMUM)
	rm -rf $(VENV_MIN)
	$(PYTHON) -m venv $(VENV_MIN)
	$(PY_MIN) -m pip install -c $(MINIMUM) 'setuptools<81' wheel
	$(PY_MIN) -m pip install -c $(MINIMUM) -e '.[server]' PyQt5 'pytest>=7' 'schemathesis>=4.0'
	$(PY_MIN) -m pip install --no-deps --target $(NUMPY_126) numpy==1.26.4
	touch $@

test-minimum: install-minimum
	$(MIN_ENV) $(PY_MIN) -m pytest tests -m 'not slow' --ignore=tests/train/test_distributed.py
	$(MIN_ENV) PYTHONPATH=$(NUMPY_126) $(PY_MIN) -m pytest $(NUMPY_126_TESTS)
