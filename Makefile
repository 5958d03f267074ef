# edgehisto: the whole set-up is `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= demo-output

.PHONY: install test lint demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[train,test]"
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check .

test: install lint
	$(PY) -m pytest

# Synthesise IDC tiles, train the IDC CNN briefly, export with parity gates, classify with Grad-CAM.
demo: install
	rm -rf $(OUT)
	$(VENV)/bin/edgehisto synth idc --out $(OUT)/data --n 800 --seed 0
	$(VENV)/bin/edgehisto inspect $(OUT)/data
	$(VENV)/bin/edgehisto train idc $(OUT)/data --out $(OUT)/run --epochs 8
	$(VENV)/bin/edgehisto export $(OUT)/run --out $(OUT)/bundle
	$(VENV)/bin/edgehisto classify "$(OUT)/data/*/1/*_x1_*.png" "$(OUT)/data/*/0/*_x1_*.png" \
		--model $(OUT)/bundle --precision int8 --gradcam $(OUT)/gradcam
	@echo "Grad-CAM overlays and maps: $(OUT)/gradcam"

# Benchmarks: every bundle variant side by side (reports/bench.{json,md}, PNG plots), then the
# pytest-benchmark microbenchmarks of the runtime hot path. BENCH_BUNDLES empty = embedded default.
SHARED_IDC := ../shared/data/idc
BENCH_BUNDLES ?=
BENCH_DATA ?= $(if $(wildcard $(SHARED_IDC)/README.md),--data $(SHARED_IDC),)
bench: install
	$(VENV)/bin/edgehisto bench $(BENCH_BUNDLES) $(BENCH_DATA) --out reports
	$(PY) -m pytest bench --benchmark-only -p no:cacheprovider --benchmark-json reports/microbench.json

clean:
	rm -rf $(OUT) build dist *.egg-info .pytest_cache .ruff_cache
