# edgehisto: the whole set-up is `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= demo-output

.PHONY: fuzz install test lint demo demo-pipeline default-model bench bench-densenet bench-kiosk \
	bench-scale breakhis-model breakhis-cv verify-cpus clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[train,test,kiosk,scale]"
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check .

# Two pytest-xdist workers: the suite spends most of its time in single-threaded Python, so a second
# worker uses the second core. Each expensive trained fixture stays on one worker (tests/conftest.py).
TEST_WORKERS ?= 2
PYTEST_WORKERS := -n $(TEST_WORKERS) --dist loadgroup
# The emulation cache comes first so that the suite's ARM preprocessing test runs (and must run).
# verify-cpus runs beside the suite at the lowest CPU priority, on the core time the suite leaves idle
# (imports, subprocess start-ups, waits), and its output is printed once the suite is done; the
# target fails if either does. It runs in its own session, so that an interrupted suite stops it
# and its QEMU jobs too. (Through SUBMAKE, not $(MAKE), so that `make -n test` runs nothing.)
SUBMAKE = $(MAKE)
test: install lint
ifneq ($(SKIP_EMULATION),1)
	.ci/emulated-cpus setup
endif
	@log=$$(mktemp) || exit 1; \
	setsid nice -n 19 $(SUBMAKE) --no-print-directory verify-cpus >$$log 2>&1 & verify=$$!; \
	trap 'kill -- -$$verify 2>/dev/null; rm -f $$log; exit 130' INT TERM; \
	echo "verify-cpus: running beside the suite at the lowest priority (output follows the suite)"; \
	$(if $(filter 1,$(SKIP_EMULATION)),,EDGEHISTO_REQUIRE_EMULATION=1 )$(PY) -m pytest $(PYTEST_WORKERS); suite=$$?; \
	wait $$verify; cpus=$$?; cat $$log; rm -f $$log; \
	[ $$cpus -eq 0 ] || echo "make test: verify-cpus FAILED (exit $$cpus)"; \
	[ $$suite -eq 0 ] && [ $$cpus -eq 0 ]

# On-device verification of the embedded bundle: natively (fp32 + int8), then int8 under QEMU
# user-mode emulation of the CPU kinds whose onnxruntime int8 kernels differ: AVX2, SSE4.2,
# Raspberry Pi 4 (Cortex-A72) and Pi 5 (Cortex-A76). `.ci/emulated-cpus setup` installs
# qemu-user and an arm64 Python once (cached in .cache/emulation) and fails loudly if it can't.
# SKIP_EMULATION=1 skips the emulated leg on purpose (CI never sets it).
EMULATED_CPUS ?= haswell nehalem cortex-a72 cortex-a76
# Every embedded bundle natively (fp32 + int8), then int8 under QEMU on all four CPUs, every one gated.
EMBEDDED := $(patsubst runtime/models/%/manifest.json,%,$(wildcard runtime/models/*/manifest.json))
verify-cpus: install
	@for model in $(EMBEDDED); do $(EH) verify $$model || exit 1; done
ifeq ($(SKIP_EMULATION),1)
	@echo "verify-cpus: emulated CPUs skipped (SKIP_EMULATION=1)"
else
	.ci/emulated-cpus setup
	@for cpu in $(EMULATED_CPUS); do for model in $(EMBEDDED); do \
		echo "== verify $$model under QEMU: $$cpu"; \
		.ci/emulated-cpus run $$cpu -- -m edgehisto verify $$model --precision int8 || exit 1; \
	done; done
endif

EH := $(VENV)/bin/edgehisto
IDC_DATA ?= ../shared/data/idc
HAVE_IDC := $(firstword $(wildcard $(IDC_DATA)/*/1))
BREAKHIS_DATA ?= ../shared/data/breakhis
# The embedded BreaKHis model's held-out listing is relative to the root it was trained on.
BREAKHIS_EVAL_DATA ?= $(BREAKHIS_DATA)
HAVE_BREAKHIS := $(wildcard $(BREAKHIS_DATA)/real/BreaKHis_v1 $(BREAKHIS_DATA)/BreaKHis_v1)

# The embedded models on real tissue, no training: 24 real IDC patches of the default model's test
# patients ship in samples/idc (attributed there), so this shows labels that mean something on a
# fresh machine. With ../shared/data present, both models are also scored on their held-out patients.
demo: install
	rm -rf $(OUT)
	$(EH) models
	@echo "== The embedded IDC model on 24 real patches of patients it never saw (samples/idc, sources in its README)"
	$(EH) evaluate idc samples/idc --out $(OUT)/idc-samples --precision int8 --all-tiles --show-tiles --panel-n 3
ifneq ($(HAVE_IDC),)
	@echo "== The embedded IDC model on its held-out test patients (real tissue from $(IDC_DATA))"
	$(EH) evaluate idc $(IDC_DATA) --out $(OUT)/idc-held-out --precision int8 --limit 400
endif
ifneq ($(HAVE_BREAKHIS),)
	@echo "== The embedded BreaKHis model on its held-out test patients (real fields from $(BREAKHIS_EVAL_DATA))"
	$(EH) evaluate breakhis $(BREAKHIS_EVAL_DATA) --out $(OUT)/breakhis-held-out --precision int8
endif
	@echo "Reports with Grad-CAM panels: $(OUT)/idc-samples/summary.md$(if $(HAVE_IDC), and $(OUT)/idc-held-out/summary.md)$(if $(HAVE_BREAKHIS), and $(OUT)/breakhis-held-out/summary.md)"
	@echo "Run edgehisto yourself: source .venv/bin/activate, then e.g. edgehisto classify --help"

# The whole pipeline on synthetic tiles: synthesise, train, export with parity, classify, evaluate;
# a few minutes on 2 cores. 16 patients, so the patient-grouped val and test sides hold several
# patients each: with 8, the test side was one patient and val two, and early stopping's restore-
# best on so noisy a val_loss can hand back a near-constant epoch-1 model. 2,400 tiles of 24 patients,
# so the test side (about 350 tiles) measures the int8 gate's 1-point accuracy drop rather than a few
# near-ties: at 173 test tiles three flipped ties (1.7 points) failed the export in one run of two. Native 50 px input: 128 px upsampling adds no detail and made an epoch about 8x slower (8
# epochs were all the time allowed). It ends by scoring the int8 bundle on its held-out test
# patients: balanced accuracy, and the Grad-CAM pointing game against the lesion masks.
demo-pipeline: install
	rm -rf $(OUT)/pipeline
	$(EH) synth idc --out $(OUT)/pipeline/data --n 2400 --seed 0 --patients 24
	$(EH) inspect $(OUT)/pipeline/data
	$(EH) train idc $(OUT)/pipeline/data --out $(OUT)/pipeline/run --input-size 50 --epochs 20 \
		--stain-augment --class-weights
	$(EH) export $(OUT)/pipeline/run --out $(OUT)/pipeline/bundle
	$(EH) classify $(OUT)/pipeline/data --model $(OUT)/pipeline/bundle --precision int8 \
		--gradcam $(OUT)/pipeline/gradcam --format csv > $(OUT)/pipeline/predictions.csv
	$(EH) evaluate $(OUT)/pipeline/bundle $(OUT)/pipeline/data --out $(OUT)/pipeline/evaluation \
		--precision int8

# Retrain the embedded default IDC model from ../shared/data/idc (245 patients, fixed seeds): the
# recipes compared are native 50 px with and without stain jitter and class weights, and 128 px; the
# one with the best int8 balanced accuracy on the val patients is installed (release/default_model.py)
# with its card and 24 real test-patient samples for make demo. About 70 minutes on 2 cores.
DEFAULT_RUNS := runs/default
IDC_RECIPES := idc50:--input-size=50 idc50-nostain:--input-size=50,--no-stain-augment \
	idc50-noweights:--input-size=50,--no-class-weights idc128-nostain:--input-size=128,--no-stain-augment
default-model: install
	@for recipe in $(IDC_RECIPES); do name=$${recipe%%:*}; flags=$$(echo $${recipe#*:} | tr , ' '); \
		epochs="--epochs 40 --patience 8"; case $$name in idc128*) epochs="--epochs 6 --patience 3";; esac; \
		$(EH) train idc $(IDC_DATA) --out $(DEFAULT_RUNS)/$$name --class-weights --stain-augment $$flags \
			$$epochs --seed 0 || exit 1; \
		$(EH) export $(DEFAULT_RUNS)/$$name --out $(DEFAULT_RUNS)/$$name-bundle; [ $$? -le 1 ] || exit 1; \
	done
	$(EH) default-model --data $(IDC_DATA) $(foreach r,$(IDC_RECIPES),$(DEFAULT_RUNS)/$(firstword $(subst :, ,$(r))):$(DEFAULT_RUNS)/$(firstword $(subst :, ,$(r)))-bundle)

# The embedded BreaKHis bundle (runtime/models/breakhis) from every real field in BREAKHIS_DATA (real/
# and more/: 1,174 fields of 49 slide ids), with fixed seeds. The backbone starts from a DenseNet121
# pretrained on the 245 IDC patients at 64 px (about the physical scale of a field at 128 px; 4 epochs,
# about 30 minutes on 2 cores). breakhis-cv compares recipes by grouped 3-fold CV over the slide ids
# (6 epochs each; nothing held out steers training; about 35 minutes a recipe): the seed's reference
# (whole field squashed to 128, from scratch), class weights with HSV colour jitter, the IDC-pretrained
# start, and that start with one more lever each: colour normalisation, magnification zoom, fixed
# scale, slide balance, H&E-space stain jitter, 12 epochs (docs/commands.md has the table). The
# IDC-pretrained row keeps its fold models, and cv-precision scores them at fp32 and int8. The
# IDC-pretrained start won (image balanced accuracy 0.796 +- 0.082, slide 0.876 +- 0.074, against the reference's
# 0.780 +- 0.103 and 0.849 +- 0.067). breakhis-model trains the multitask DenseNet121 from it on the
# train slides (val and test slides held out by slide id), exports it and installs it with its card
# (about 40 minutes).
BREAKHIS_RUNS := runs/breakhis
BREAKHIS_PRETRAIN := $(BREAKHIS_RUNS)/pretrain-idc64
BREAKHIS_CV := --folds 3 --epochs 6 --seed 0
BREAKHIS_START := idc=$(BREAKHIS_PRETRAIN)/backbone.keras
$(BREAKHIS_PRETRAIN)/backbone.keras: | install
	$(EH) train pretrain-idc $(IDC_DATA) --out $(BREAKHIS_PRETRAIN) --input-size 64 --epochs 4 --seed 0

breakhis-cv: install $(BREAKHIS_PRETRAIN)/backbone.keras
	$(EH) train breakhis-cv $(BREAKHIS_DATA) --out $(BREAKHIS_RUNS)/cv-reference $(BREAKHIS_CV)
	$(EH) train breakhis-cv $(BREAKHIS_DATA) --out $(BREAKHIS_RUNS)/cv-balanced-stain $(BREAKHIS_CV) \
		--class-weights --stain-augment
	$(EH) train breakhis-cv $(BREAKHIS_DATA) --out $(BREAKHIS_RUNS)/cv-idc-pretrained $(BREAKHIS_CV) \
		--start $(BREAKHIS_START) --keep-models
	$(EH) cv-precision $(BREAKHIS_RUNS)/cv-idc-pretrained --data $(BREAKHIS_DATA)
	$(EH) train breakhis-cv $(BREAKHIS_DATA) --out $(BREAKHIS_RUNS)/cv-idc-colour $(BREAKHIS_CV) \
		--start $(BREAKHIS_START) --colour-normalise
	$(EH) train breakhis-cv $(BREAKHIS_DATA) --out $(BREAKHIS_RUNS)/cv-idc-magnification $(BREAKHIS_CV) \
		--start $(BREAKHIS_START) --magnification-zoom 2
	$(EH) train breakhis-cv $(BREAKHIS_DATA) --out $(BREAKHIS_RUNS)/cv-idc-fixed-scale $(BREAKHIS_CV) \
		--start $(BREAKHIS_START) --field-geometry fixed-scale
	$(EH) train breakhis-cv $(BREAKHIS_DATA) --out $(BREAKHIS_RUNS)/cv-idc-slide-balance $(BREAKHIS_CV) \
		--start $(BREAKHIS_START) --slide-balance
	$(EH) train breakhis-cv $(BREAKHIS_DATA) --out $(BREAKHIS_RUNS)/cv-idc-hed $(BREAKHIS_CV) \
		--start $(BREAKHIS_START) --hed-augment
	$(EH) train breakhis-cv $(BREAKHIS_DATA) --out $(BREAKHIS_RUNS)/cv-idc-epochs12 $(BREAKHIS_CV) \
		--start $(BREAKHIS_START) --epochs 12

breakhis-model: install $(BREAKHIS_PRETRAIN)/backbone.keras
	$(EH) train breakhis $(BREAKHIS_DATA) --out $(BREAKHIS_RUNS)/multitask-idc --arch multitask --epochs 6 \
		--patience 6 --seed 0 --weights $(BREAKHIS_PRETRAIN)/backbone.keras
	$(EH) export $(BREAKHIS_RUNS)/multitask-idc --out $(BREAKHIS_RUNS)/multitask-idc-bundle --no-tflite \
		--quantize-ops Conv --fp32-after pool3_pool --calibration-images 512
	$(EH) breakhis-model --data $(BREAKHIS_DATA) --pretrain $(BREAKHIS_PRETRAIN)/pretrain.json \
		$(foreach cv,$(wildcard $(BREAKHIS_RUNS)/cv-*/cv.json),--cv $(cv)) \
		$(BREAKHIS_RUNS)/multitask-idc:$(BREAKHIS_RUNS)/multitask-idc-bundle

# Benchmarks, written to $(BENCH_OUT)/ (ignored by git; the README's Benchmarks section keeps the
# record): the int8 and input-layout variants of the IDC default (export-variants -> variants/),
# every embedded model's variants, roofline and routing side by side (bench.{json,md}, PNG plots),
# the onnxruntime tuning against those variants (ort_tuning.{json,md}), then the pytest-benchmark
# microbenchmarks of the runtime hot path (benchmarks/, not shipped in the wheel), the memory
# check, the kiosk's load check and the Ray engine's throughput. BENCH_BUNDLES empty = every
# embedded model, the IDC default first. About 12 minutes on 2 cores.
BENCH_BUNDLES ?=
BENCH_DATA ?= $(if $(HAVE_IDC),--data $(IDC_DATA),)
BENCH_OUT ?= bench-output
bench: install
ifeq ($(strip $(BENCH_DATA)),)
	$(error make bench calibrates int8 variants on labelled tiles: $(IDC_DATA) is absent, set BENCH_DATA="--data DIR")
endif
	$(EH) export-variants $(firstword $(BENCH_BUNDLES)) $(BENCH_DATA) --out $(BENCH_OUT)/variants
	$(EH) bench $(BENCH_BUNDLES) $(BENCH_DATA) --out $(BENCH_OUT) --tuning-variants $(BENCH_OUT)/variants
	$(PY) -m pytest benchmarks --benchmark-only -p no:cacheprovider --benchmark-json $(BENCH_OUT)/microbench.json
	$(PY) benchmarks/hostile_memory.py --out $(BENCH_OUT)/hostile_memory.json
	$(PY) benchmarks/kiosk_load.py --out $(BENCH_OUT)
	$(PY) benchmarks/scale_throughput.py --out $(BENCH_OUT) --tiles 1000 --rounds 1
	$(PY) benchmarks/map_throughput.py --out $(BENCH_OUT)

# The DenseNet121 hierarchy with every variant: the embedded BreaKHis model ships ONNX only, so this
# trains a three-model hierarchy and a multitask model for one epoch (the real images when
# $(BREAKHIS_DATA) exists, else synthetic ones), exports them with their Keras references and TFLite
# files, and benches Keras, ONNX and TFLite per stage, routing, and multitask vs hierarchy. One
# epoch: the accuracy columns mean little, the latencies and agreements are what it is for. About
# 25 minutes on 2 cores the first time; the bundles are kept in $(BENCH_OUT)/densenet.
BENCH_DENSENET := $(BENCH_OUT)/densenet
BENCH_DENSENET_DATA := $(if $(HAVE_BREAKHIS),$(BREAKHIS_DATA),$(BENCH_DENSENET)/synthetic)
$(BENCH_DENSENET)/synthetic.done: | install
	rm -rf $(BENCH_DENSENET)/synthetic
	$(EH) synth breakhis --out $(BENCH_DENSENET)/synthetic --n 96 --seed 0
	touch $@
$(BENCH_DENSENET)/%-bundle/manifest.json: | install $(if $(HAVE_BREAKHIS),,$(BENCH_DENSENET)/synthetic.done)
	$(EH) train breakhis $(BENCH_DENSENET_DATA) --out $(BENCH_DENSENET)/$* --arch $* --epochs 1 --seed 0
	$(EH) export $(BENCH_DENSENET)/$* --out $(BENCH_DENSENET)/$*-bundle --calibration-images 32; status=$$?; \
		if [ $$status -eq 1 ] && [ -f $@ ]; then \
			echo "export of $* missed a parity gate after one epoch: benched anyway, the report shows it"; \
		elif [ $$status -ne 0 ]; then exit $$status; fi
bench-densenet: $(BENCH_DENSENET)/hierarchy-bundle/manifest.json $(BENCH_DENSENET)/multitask-bundle/manifest.json
	$(EH) bench $(BENCH_DENSENET)/hierarchy-bundle $(BENCH_DENSENET)/multitask-bundle --data $(BENCH_DENSENET_DATA) \
		--out $(BENCH_OUT)/densenet-bench --repeats 30

# The kiosk's load check alone (no data needed): concurrent clients, good and bad images.
bench-kiosk: install
	$(PY) benchmarks/kiosk_load.py --out $(BENCH_OUT) --clients 8 --requests 2000

# edgehisto batch: the Ray engine's tiles/s against one process, on synthetic tiles.
bench-scale: install
	$(PY) benchmarks/scale_throughput.py --out $(BENCH_OUT) --tiles 2000 --workers 2 --rounds 3

# A long fuzz of the image header readers and the manifest loader (make test runs a short,
# seeded one): any exception other than the project's own errors fails.
FUZZ_EXAMPLES ?= 20000
fuzz: install
	EDGEHISTO_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider \
		tests/test_hostile_inputs.py tests/test_hostile_bundles.py -k "fuzz or header_readers"

clean:
	rm -rf $(OUT) build dist *.egg-info .pytest_cache .ruff_cache
