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
METADATA ?= metadata/vocab.txt.gz
T ?= 20
# English's t in make demo-worldwide, small enough that its 400 captions a language are capped too
WORLDWIDE_T ?= 4

# The shipped vocabulary's inputs (make metadata): captions to mine bigrams from, and extra lists (SCOWL,
# Debian's `scowl` package: common words, then proper names, then level-80 words until the total is reached).
CORPUS ?= ../shared/data/captions/laion_style_10k.parquet ../shared/data/captions/cc3m_val.tsv
SCOWL ?= /usr/share/dict/scowl
EXTRA ?= $(foreach level,10 20 35 40 50 55 60 70,$(SCOWL)/english-words.$(level)) \
	$(foreach level,35 40 50 60 70 80 95,$(SCOWL)/english-proper-names.$(level)) $(SCOWL)/english-words.80
MIN_COUNT ?= 3
MIN_PMI ?= 8
# Captions beside the repo that the worldwide vocabularies mine their bigrams from (make metadata-worldwide)
WORLDWIDE_CAPTIONS ?= $(foreach language,de fr cs,$(language)=../shared/data/captions/multilingual/multi30k_train.$(language).gz)

.PHONY: install demo curate extract-crawl demo-crawl demo-worldwide images datacomp-subset demo-images metadata metadata-worldwide train evaluate experiment experiment-quick report notebooks browser test test-fast bench \
	gpu-wheels gpu-check clean

install: $(VENV)/.installed
# FAISS's build: cpu, or gpu on a CUDA 12 machine (make install FAISS=gpu: faiss-gpu-cu12 in place of faiss-cpu)
FAISS ?= cpu

$(VENV)/.installed: pyproject.toml setup.py $(wildcard native/*.pyx)
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[$(FAISS),safety,test]'
	touch $@

demo: curate ## text curation of the sample pool with the shipped vocabulary, Spark local mode

curate: install ## the same on your pool: make curate POOL=... METADATA=... RUN=... T=...
	$(SUBMIT) jobs/curate_text.py --pool $(POOL) --metadata $(METADATA) --out $(RUN) --t $(T)

images: install ## the image side on a curated run: make images RUN=... SHARDS=... IMAGE_OPTIONS=... EMBED_OPTIONS=... SCORE_OPTIONS=...
	$(SUBMIT) jobs/download.py --run $(RUN)
	$(SUBMIT) jobs/validate.py --run $(RUN) $(IMAGE_OPTIONS)
	$(SUBMIT) jobs/embed.py --run $(RUN) $(EMBED_OPTIONS)
	$(SUBMIT) jobs/dedup.py --run $(RUN) --eps auto $(DEDUP_OPTIONS)
	$(if $(SCORE_OPTIONS),$(SUBMIT) jobs/score_filter.py --run $(RUN) $(SCORE_OPTIONS))
	$(SUBMIT) jobs/rebalance.py --run $(RUN) --t $(T)
	$(SUBMIT) jobs/write_shards.py --run $(RUN) --out $(or $(SHARDS),$(RUN)/shards)

datacomp-subset: install ## a run's shards as a DataComp subset file: make datacomp-subset RUN=... SUBSET=subset.npy
	$(PYTHON) jobs/export_uids.py --run $(RUN) --out $(or $(SUBSET),$(RUN)/subset.npy)

CRAWL ?= data/crawl
CRAWL_POOL ?= runs/crawl/pool
CRAWL_OPTIONS ?=

extract-crawl: install ## a pool from crawl files: make extract-crawl CRAWL="files, folders or wat.paths.gz" CRAWL_POOL=...
	$(SUBMIT) jobs/extract_crawl.py --input $(CRAWL) --out $(CRAWL_POOL) $(CRAWL_OPTIONS)

demo-crawl: install ## the shipped Common Crawl page: its image links with alt text to a pool, then curated
	$(SUBMIT) jobs/extract_crawl.py --input data/crawl --out runs/demo-crawl/pool
	$(SUBMIT) jobs/curate_text.py --pool runs/demo-crawl/pool --metadata $(METADATA) --out runs/demo-crawl/run --t 2

demo-worldwide: install ## MetaCLIP 2 worldwide curation of real captions in five languages (data/multilingual)
	$(SUBMIT) jobs/curate_text.py --pool data/multilingual/captions.parquet --metadata $(METADATA) \
		--worldwide --out runs/demo-worldwide --t $(WORLDWIDE_T)

demo-images: install ## the whole pipeline offline on CIFAR-10 images served from 127.0.0.1
	$(SUBMIT) jobs/demo_images.py --out runs/demo-images

metadata: install ## rebuild metadata/vocab.txt.gz (needs Debian's wordnet-base and scowl)
	$(SUBMIT) jobs/mine_bigrams.py $(foreach path,$(CORPUS),--corpus $(path)) \
		--min-count $(MIN_COUNT) --min-pmi $(MIN_PMI) --out runs/metadata/bigrams
	$(PYTHON) -m pipeline.vocabulary --bigrams runs/metadata/bigrams $(foreach path,$(EXTRA),--extra $(path)) \
		--out metadata/vocab.txt.gz --provenance metadata/provenance.tsv.gz --report metadata/vocab_build.json

metadata-worldwide: install ## rebuild metadata/worldwide/<language>.txt.gz (EXTRA_de=terms.txt adds a list to a language)
	$(PYTHON) -m pip install -q -e '.[vocab]'
	$(PYTHON) -m pipeline.vocab.worldwide $(foreach pair,$(WORLDWIDE_CAPTIONS),--captions $(pair)) \
		$(foreach var,$(filter EXTRA_%,$(.VARIABLES)),--extra $(patsubst EXTRA_%,%,$(var))=$($(var)))

SHARDS ?= runs/demo-images/shards
TRAIN_OUT ?= runs/demo-images/train
ZERO_SHOT ?= --zero-shot-classes data/cifar10_classes.txt --zero-shot-images ../shared/data/images/cifar10_test.tar.gz
TRAIN_OPTIONS ?= --samples 9600 --batch-size 32 --lr 1e-3 --warmup 20 $(ZERO_SHOT) --zero-shot-every 50

train: install ## train the tiny CLIP on shards (make demo-images first): make train SHARDS=... TRAIN_OPTIONS=...
	$(PYTHON) -m pipeline.train --shards $(SHARDS) --out $(TRAIN_OUT) --resume latest $(TRAIN_OPTIONS)

evaluate: install ## zero-shot CIFAR-10 of the latest checkpoint of make train
	$(PYTHON) -m pipeline.evaluate --checkpoint $$(ls $(TRAIN_OUT)/checkpoints/step-*.pt | tail -1) \
		--classes data/cifar10_classes.txt --images ../shared/data/images/cifar10_test.tar.gz \
		--out $(TRAIN_OUT)/eval.json

EXPERIMENT ?= longtail
EXPERIMENT_RUN ?= runs/experiments/$(EXPERIMENT)
EXPERIMENT_DATA_OPTIONS ?=
EXPERIMENT_OPTIONS ?=

experiment: install ## the closed-loop study on CIFAR-10: settings chosen on validation, 5 arms, 2 budgets (experiments/NAME/)
	$(SUBMIT) jobs/experiment_data.py --out $(EXPERIMENT_RUN) $(EXPERIMENT_DATA_OPTIONS)
	$(PYTHON) -m pipeline.experiment --run $(EXPERIMENT_RUN) --name $(EXPERIMENT) $(EXPERIMENT_OPTIONS)

experiment-quick: install ## the study, small: 3 arms, one budget, 3 seeds (experiments/longtail-quick/)
	$(SUBMIT) jobs/experiment_data.py --out $(EXPERIMENT_RUN) $(EXPERIMENT_DATA_OPTIONS)
	$(PYTHON) -m pipeline.experiment --run $(EXPERIMENT_RUN) --name $(EXPERIMENT)-quick --quick $(EXPERIMENT_OPTIONS)

REPORT_OPTIONS ?=

report: install ## HTML report of a run (funnel, balancing, matching, dedup, training): make report RUN=...
	$(PYTHON) -m pipeline.report --run $(RUN) $(REPORT_OPTIONS)

notebooks: install ## JupyterLab on notebooks/ (they open runs/demo-images or runs/demo; METACURATE_RUN=... another)
	$(PYTHON) -m pip install -q -e '.[notebooks]'
	$(PYTHON) -m jupyter lab notebooks/

# The report tests render pages in Debian's chromium (not a browser downloaded by a test tool).
browser:
	@command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || \
		echo "could not install Debian's chromium: the report tests will say so"

test: install browser ## the full suite, as CI runs it
	$(PYTHON) -m pytest -q --durations=15

test-fast: install ## unit tests only (no Spark, cluster, torchrun, notebook or browser): the edit-test loop
	$(PYTHON) -m pytest -q -m "not slow"

bench: install
	$(PYTHON) -m bench.text_curation
	$(PYTHON) -m bench.compiled_matcher
	$(PYTHON) -m bench.images
	$(PYTHON) -m bench.dedup
	$(PYTHON) -m bench.crawl
	$(PYTHON) -m bench.worldwide
	$(PYTHON) -m bench.train

gpu-wheels: install ## the wheels make gpu-check installs on a GPU machine without a package index (into .whl/)
	$(PYTHON) -m bench.gpu --download-wheels

GPU_PYTHON ?= python3
gpu-check: ## on a GPU machine, with its own torch: embedding, SemDeDup and trainer figures (bench/out/gpu.json)
	NO_ALBUMENTATIONS_UPDATE=1 $(GPU_PYTHON) -m bench.gpu

clean:
	rm -rf runs spark-warehouse
