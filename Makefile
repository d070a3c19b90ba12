# metacurate: `make demo` runs text curation on the shipped sample pool; `make test` runs the suite.
VENV ?= .venv
PYTHON := $(abspath $(VENV))/bin/python
SPARK_SUBMIT := $(abspath $(VENV))/bin/spark-submit
export PYSPARK_PYTHON := $(PYTHON)
export PYSPARK_DRIVER_PYTHON := $(PYTHON)
export NO_ALBUMENTATIONS_UPDATE := 1
SUBMIT := $(SPARK_SUBMIT) --driver-memory 4g \
	--driver-java-options "-Dlog4j2.configurationFile=$(abspath conf/log4j2.properties)"

RUN ?= runs/demo
POOL ?= data/sample_pool.parquet
METADATA ?= metadata/vocab_interim.txt.gz
T ?= 20

.PHONY: install demo curate test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[test]'
	touch $@

demo: curate ## text curation of the sample pool with the shipped vocabulary, Spark local mode

curate: install ## the same on your pool: make curate POOL=... METADATA=... RUN=... T=...
	$(SUBMIT) jobs/curate_text.py --pool $(POOL) --metadata $(METADATA) --out $(RUN) --t $(T)

test: install
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) -m bench.text_curation

clean:
	rm -rf runs spark-warehouse
