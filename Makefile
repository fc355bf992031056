# ooda — two commands on a fresh machine: `make demo` and `make test`.
PY      := .venv/bin/python
UV      := .venv/bin/uv
STAMP   := .venv/.installed

.PHONY: bench-rca bytecode image install demo test test-fast k8s-bins prometheus-bins kafka-bins postgres-bins chromium-bins bench-k8s bench-held-drain bench-nab bench-nab-loop bench-forecast bench-forecast-cv bench-lstm-cv bench-forecast-plan bench-detector bench-chaos bench-real-parts bench-serve bench-lab lint format mlflow-ui jupyter clean

install: $(STAMP)

# Bytecode is compiled at install time (uv's --compile-bytecode, what each line installs):
# where PYTHONDONTWRITEBYTECODE is set, as on our machines, Python writes none, and every
# process compiled torch, Ray, MLflow ... afresh, about 14 s of each start.

$(STAMP): pyproject.toml
	test -x $(PY) || python3.11 -m venv .venv
	$(PY) -m pip install -q --upgrade pip uv
	$(UV) pip install --python $(PY) -q --compile-bytecode -e '.[dev]'
	$(UV) pip install --python $(PY) -q --compile-bytecode --no-deps 'drain3==0.9.11'  # see pyproject.toml
	touch $(STAMP)

# The project's own modules, compiled likewise (a no-op when up to date).
PACKAGES := contracts lab features models training serving actuators ooda
bytecode: install
	@$(PY) -m compileall -q -j 0 $(PACKAGES) >/dev/null

demo: install bytecode
	.venv/bin/ooda demo

# Two pytest-xdist workers, one per core: the modules with the session's servers on one,
# every other module whole on either (tests/conftest.py); TEST_WORKERS=0 runs it serially.
TEST_WORKERS ?= 2
test: install bytecode k8s-bins prometheus-bins kafka-bins postgres-bins chromium-bins
	.venv/bin/pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

# The image (Dockerfile): Docker where an engine answers, else podman (Debian's package)
# building in a chroot; IMAGE_ARGS adds build options (a registry out of reach, say:
# `--pull=never --network host --build-arg TORCH_INDEX=`).
IMAGE := ooda:0.1.0
image:
	@if docker info >/dev/null 2>&1; then docker build $(IMAGE_ARGS) -t $(IMAGE) .; \
	else podman build --isolation chroot $(IMAGE_ARGS) -t $(IMAGE) .; fi

# kube-apiserver, kube-controller-manager, kube-scheduler, etcd and KWOK, built from the Go
# module proxy into ~/.cache/ooda/k8s/ (about 7 min the first time, a no-op after).
k8s-bins:
	bash lab/k8s/build.sh

# The jars of a single-node Apache Kafka broker from Maven Central (mvn), into ~/.cache/ooda/kafka.
kafka-bins:
	bash lab/kafka/build.sh

# Prometheus, promtool, Alertmanager and the blackbox exporter from Debian's packages (root,
# or sudo; a no-op after).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
prometheus-bins:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null \
	  && command -v prometheus-alertmanager >/dev/null \
	  && command -v prometheus-blackbox-exporter >/dev/null || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends prometheus prometheus-alertmanager \
	    prometheus-blackbox-exporter >/dev/null; }

# PostgreSQL from Debian's packages: the audit store replicas on several machines share.
postgres-bins:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends postgresql >/dev/null; }

# Chromium from Debian's packages: the incident pages are tested in a real headless browser.
chromium-bins:
	@command -v chromium >/dev/null || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends chromium >/dev/null; }

bench-k8s: install k8s-bins
	.venv/bin/python benchmarks/bench_k8s.py

bench-held-drain: install k8s-bins
	.venv/bin/python benchmarks/bench_held_drain.py

bench-forecast: install
	.venv/bin/python benchmarks/bench_forecast.py

# The forecaster's combination and interval rules chosen leave-one-NAB-category-out.
bench-forecast-cv: install
	.venv/bin/python benchmarks/bench_forecast_cv.py

# The LSTM's own settings chosen leave-one-NAB-category-out (shares bench-forecast-cv's cache).
bench-lstm-cv: install
	.venv/bin/python benchmarks/bench_lstm_cv.py

# The detector with and without the metric families, forward-chained CV over lab histories.
bench-detector: install
	.venv/bin/python benchmarks/bench_detector.py --seeds 1 2 3 4 5 6 --days 5 --per-day 8

# PetShop's root-cause benchmark of `ooda rca` (recall@1/@3 and specificity, the harness's way).
bench-rca: install
	.venv/bin/python benchmarks/bench_rca.py --data ../shared/data/petshop --cv
	.venv/bin/python benchmarks/bench_rca.py --data ../shared/data/petshop --cv \
		--objective balanced --persistence 2 --threshold 3

# Numenta Anomaly Benchmark of `ooda score-series` on ../shared/data/nab (see the script).
bench-nab: install
	.venv/bin/python benchmarks/bench_nab.py

# The loop's own detector (the Isolation Forest on feature rows) on the same NAB files.
bench-nab-loop: install
	.venv/bin/python benchmarks/bench_nab_loop.py

# What predictive scaling plans on, and the forecast watch it reads, by estate size.
bench-forecast-plan: install
	.venv/bin/python benchmarks/bench_forecast_plan.py

# A tick's reads from a real Prometheus against the lab's own source; the servers' start-up.
bench-real-parts: install prometheus-bins kafka-bins
	.venv/bin/python benchmarks/bench_real_parts.py

# The chaos scorecard: 20 drawn instances of every scenario, on / off / reactive, and a
# clean week (trains champions first if the registry has none; starts Ray Serve).
bench-chaos: install
	.venv/bin/ooda chaos --scenarios all --runs 20 --seed 7 --clean-week-days 7 \
		--json .ooda/chaos.json

# The scoring path under open-loop load (vegeta, built once from the Go module proxy), batch
# throughput per core, Serve start-up, and the loop's tick by part for 3 and 1,000 services.
VEGETA := $(HOME)/.cache/ooda/bin/vegeta

$(VEGETA):
	GOBIN=$(dir $@) go install github.com/tsenart/vegeta/v12@v12.13.0

bench-serve: install $(VEGETA)
	.venv/bin/python benchmarks/bench_serve.py

# The lab's own cost: a simulated day of 3 and 50 services, and the lab side of a loop tick
# on 1,000 services / 10,000 pods.
bench-lab: install
	.venv/bin/python benchmarks/bench_lab.py

test-fast: install
	.venv/bin/pytest -m "not e2e and not k8s"

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy --explicit-package-bases contracts lab features models training serving actuators ooda tests
	.venv/bin/lint-imports

format: install
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# JupyterLab on the project's environment, in notebooks/ (see the README's Notebooks).
jupyter: install
	cd notebooks && ../.venv/bin/jupyter lab --ip=127.0.0.1 --no-browser

mlflow-ui: install
	.venv/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf .ooda features/repo/data mlruns/mlflow.db mlruns/artifacts
