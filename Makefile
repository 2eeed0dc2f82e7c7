# slak_mm: two commands set up a fresh machine (Python 3.11 + a compiler):
#   make demo   venv + install, synthetic ADE20K, train UperNet+SLaK on CPU,
#               evaluate (mIoU) and write prediction images
#   make test   venv + install, run the test suite
#   make compat every packaged mmdet / mmseg / mmpretrain family with SLaK
#               (docs/compatibility.md)
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data/synthetic
WORK_DIR ?= work_dirs/demo_upernet_slak
DEMO_CONFIG ?= configs/demo/upernet_slak_demo_synthetic_ade20k.py
# the test files spread over TEST_WORKERS processes (pytest-xdist; a file's
# tests stay together, so its module fixtures run once); the 15 slowest
# tests are listed at the end: the suite must stay within 12 min on 2 cores
TEST_WORKERS ?= 2
PYTEST_ARGS ?= --durations=15 -n $(TEST_WORKERS) --dist loadfile
# torch's OpenMP threads spin-wait; on a small CPU shared with any other busy
# process that made CPU training ~40x slower (measured). One thread is steady.
OMP_NUM_THREADS ?= 1
export OMP_NUM_THREADS

# make fuzz: FUZZ_MUTANTS mutants of each file type (tests/test_fuzz.py; the
# suite runs a few hundred); SLAK_MM_FUZZ_SEED=N picks another seed. Each
# target's summary is printed; failing mutants are saved to FUZZ_OUT.
FUZZ_MUTANTS ?= 2000
FUZZ_OUT ?= work_dirs/fuzz

.PHONY: install demo test fuzz compat clean-demo

install:
	bash tools/setup_env.sh $(VENV)

demo: install
	$(PY) tools/generate_synthetic_data.py $(DATA) --datasets ade20k
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(WORK_DIR) \
		--cfg-options data_root=$(DATA)/ADEChallengeData2016
	$(PY) tools/test.py $(DEMO_CONFIG) $$(cat $(WORK_DIR)/last_checkpoint) \
		--work-dir $(WORK_DIR) --show-dir predictions \
		--cfg-options data_root=$(DATA)/ADEChallengeData2016

test: install
	$(PY) -m pytest tests $(PYTEST_ARGS)

# the compatibility sweep: SLaK in one config of every model family mmdet,
# mmseg and mmpretrain package, one training and one test step each on the
# CPU, 2 families at a time; rewrites docs/compatibility.md (its header
# says how long it took: 17 min on 2 cores, measured 2026-12-06)
compat: install
	$(PY) tools/compat_sweep.py --jobs 2

fuzz: install
	SLAK_MM_FUZZ_MUTANTS=$(FUZZ_MUTANTS) SLAK_MM_FUZZ_OUT=$(FUZZ_OUT) \
		$(PY) -m pytest tests/test_fuzz.py::test_fuzz -s -q

clean-demo:
	rm -rf $(DATA) $(WORK_DIR)
