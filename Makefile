# Everything installs into .venv with pinned torch, so pip never pulls another multi-GB build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# Where PyTorch comes from; TORCH_INDEX=https://download.pytorch.org/whl/cpu gives the CPU-only build
# (no CUDA libraries) of the same pinned versions: make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: install test lint format demo bench model-cards clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e ".[test]" $(TORCH_PINS)
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/python examples/train.py

# the cards of the adapters the project publishes (model_cards/), from the package's card builder
model-cards: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m hf_prompt_clip.hub.published

bench: install
	$(BIN)/python bench/text_engine.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
