# Orange3-DeepImage. `make install` then `make test`; see README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned to the builds this project is tested with.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install test docs wheel smoke-wheel demo tutorials lessons lesson1 lesson2 lesson3 canvas serve bench clean

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

# Each lesson's scripted equivalent, headless (see tutorials/lesson*.md).
lesson1: install
	$(PY) tutorials/lesson1_clustering.py
lesson2: install
	$(PY) tutorials/lesson2_classification.py
lesson3: install
	$(PY) tutorials/lesson3_server.py
lessons: lesson1 lesson2 lesson3

canvas: install
	$(PY) -m Orange.canvas

serve: install
	$(VENV)/bin/deepimage serve

bench: install
	$(PY) benchmarks/embed_speed.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache demo-embeddings.csv doc/_build
