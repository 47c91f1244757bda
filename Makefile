# make demo: create .venv, install, super-resolve a sample image with the shipped weights
# make test: the test suite (what CI runs)
# make fuzz: 60 s of coverage-guided fuzzing of the file readers (atheris; crashers land in tests/fuzz_corpus/)
VENV   ?= .venv
PY     := $(VENV)/bin/python
MZSR   := $(VENV)/bin/mzsr
DEMO   ?= demo-output
# torch 2.13.0 first: a CPU wheel is on disk here, while an unpinned torch would pull a multi-GB CUDA build
TORCH  ?= torch==2.13.0

.PHONY: install demo test bench fuzz clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(TORCH)
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

demo: install
	@SAMPLE=$$($(PY) -c "import matplotlib, pathlib; print(pathlib.Path(matplotlib.get_data_path(), 'sample_data'))"); \
	rm -rf $(DEMO); \
	echo "1. degrade $$SAMPLE/grace_hopper.jpg: Gaussian blur (variance 2), direct x2 subsampling"; \
	$(MZSR) degrade $$SAMPLE/grace_hopper.jpg -o $(DEMO)/lr --kernel iso:2.0 && \
	echo "2. bicubic x2 (baseline), then MZSR with the shipped weights, scored against the original" && \
	$(MZSR) upscale $(DEMO)/lr -o $(DEMO)/bicubic --method bicubic --gt $$SAMPLE && \
	$(MZSR) upscale $(DEMO)/lr -o $(DEMO)/mzsr --kernel iso:2.0 --gt $$SAMPLE && \
	echo "3. a real photo (the JPEG itself, no ground truth): kernel, noise and JPEG quality found in the image" && \
	$(MZSR) upscale $$SAMPLE/grace_hopper.jpg -o $(DEMO)/photo --kernel estimate --save-kernel && \
	echo "Results: $(DEMO)/mzsr/grace_hopper.png, $(DEMO)/bicubic/grace_hopper.png, $(DEMO)/photo/grace_hopper.png"

test: install
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/speed_upscale.py

FUZZ_SECONDS ?= 60
fuzz: install
	$(VENV)/bin/pip install --quiet 'atheris>=2.3' || echo "atheris not installable: fuzzing with hypothesis instead"
	$(PY) fuzz/fuzz_inputs.py --seeds runs/fuzz-corpus
	$(PY) fuzz/fuzz_inputs.py -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -artifact_prefix=tests/fuzz_corpus/ \
		--seconds $(FUZZ_SECONDS) runs/fuzz-corpus

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
