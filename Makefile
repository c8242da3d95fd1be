# Orange3-DeepImage. `make install` then `make test`; see README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned to the builds this project is tested with.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install test demo canvas serve bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e '.[test,server,bench]' PyQt6 $(TORCH)
	touch $@

test: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest tests

# Headless main job: embed the sample photos with SqueezeNet on this computer.
demo: install
	$(VENV)/bin/deepimage models
	$(VENV)/bin/deepimage embed tutorials/sample-photos -o demo-embeddings.csv
	@echo "Wrote demo-embeddings.csv"

canvas: install
	$(PY) -m Orange.canvas

serve: install
	$(VENV)/bin/deepimage serve

bench: install
	$(PY) benchmarks/embed_speed.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache demo-embeddings.csv
