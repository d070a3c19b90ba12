"""Worldwide curation on Spark: an English pool gives exactly the English-only selection; a multilingual pool
gets its languages identified, each caption matched in its own language, and each language its own t."""

import gzip
import json

import nbformat
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nbclient import NotebookClient
from wordfreq import top_n_list

from pipeline.experiments.multilingual import FILES as MULTILINGUAL_FILES
from pipeline.experiments.multilingual import multilingual_captions
from pipeline.report.build import write_report
from pipeline.run.directory import MANIFEST, REJECTS
from pipeline.run.stages import STAGES
from pipeline.spark.curate import TextCurationConfig, curate_text
from pipeline.text.balancing import BalanceConfig
from pipeline.text.ingest import IngestConfig
from tests.helpers import LAION, REPO

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def vocabularies(tmp_path_factory):
    """English's and a worldwide folder (German, French, Czech, Chinese): each language's frequent words."""
    folder = tmp_path_factory.mktemp("worldwide")
    english = folder / "en_head.txt"
    english.write_text("\n".join(top_n_list("en", 3000)) + "\n")
    languages = folder / "languages"
    languages.mkdir()
    for language in set(MULTILINGUAL_FILES) - {"en"}:
        (languages / f"{language}.txt.gz").write_bytes(
            gzip.compress(("\n".join(top_n_list(language, 3000)) + "\n").encode()))
    return english, languages


def curate(spark, pool, out, vocabularies, worldwide: bool, identify: bool = False, t: float = 40.0):
    english, languages = vocabularies
    config = TextCurationConfig(pool=str(pool), metadata=str(english), out=str(out),
                                balance=BalanceConfig(t=t, seed=0), ingest=IngestConfig(identify_language=identify),
                                worldwide=str(languages) if worldwide else None)
    return curate_text(spark, config)


def selected(run):
    return set(pq.read_table(run / "selection", columns=["uid"]).column("uid").to_pylist())


def test_an_english_pool_is_curated_exactly_as_in_english_only_mode(spark, tmp_path, vocabularies):
    rows = pq.read_table(LAION, columns=["URL", "TEXT"]).slice(0, 3000)
    pool = tmp_path / "pool.parquet"
    pq.write_table(rows.append_column("language", pa.array(["en"] * rows.num_rows)), pool)
    curate(spark, pool, tmp_path / "english", vocabularies, worldwide=False)
    manifests = curate(spark, pool, tmp_path / "worldwide", vocabularies, worldwide=True)
    assert selected(tmp_path / "english") == selected(tmp_path / "worldwide")
    assert len(selected(tmp_path / "worldwide")) > 100
    balance = manifests[STAGES["balance"].folder]
    assert balance["languages"]["en"]["t"] == 40.0 and set(balance["languages"]) == {"en"}


@pytest.fixture(scope="module")
def multilingual(spark, vocabularies, tmp_path_factory):
    """A pool of real captions in five languages, no language column (ingest identifies them), curated worldwide;
    and the language each caption was written in."""
    folder = tmp_path_factory.mktemp("multilingual")
    captions, languages = [], []
    for language in MULTILINGUAL_FILES:
        captions += multilingual_captions(language, 600)
        languages += [language] * 600
    captions += ["Der Hund läuft über die Wiese im Park.", "ሰላም ለዓለም"]  # the last: a language without vocabulary
    pool = folder / "pool.parquet"
    pq.write_table(pa.table({"url": [f"https://img.example/{index}.jpg" for index in range(len(captions))],
                             "caption": captions}), pool)
    curate(spark, pool, folder / "run", vocabularies, worldwide=True, identify=True, t=3.0)
    return pool, folder / "run", languages


def test_a_multilingual_pool_is_matched_and_balanced_per_language(spark, tmp_path, vocabularies, multilingual):
    pool, run, languages = multilingual
    ingested = pq.read_table(STAGES["ingest"].path(run), columns=["language"]).column("language").to_pylist()
    assert sum(found == given for found, given in zip(ingested, languages)) >= 0.95 * len(languages)
    balance = json.loads((STAGES["balance"].path(run) / MANIFEST).read_text())
    figures = balance["languages"]
    print({language: {name: figures[language][name] for name in ("t", "tail_share", "pool", "curated")}
           for language in figures})
    assert set(figures) == set(MULTILINGUAL_FILES)
    english_share = figures["en"]["tail_share"]
    for language, threshold in figures.items():
        assert threshold["pool"] >= 570 and 0 < threshold["curated"] < threshold["pool"], (language, threshold)
        if language != "en":
            assert threshold["how"] == "derived" and threshold["target_tail_share"] == english_share
    counts = pq.read_table(STAGES["count"].file(run, "counts"))
    assert {"en", *figures} <= set(counts.column("language").to_pylist())
    rejects = pq.read_table(STAGES["match"].path(run) / REJECTS).to_pylist()
    assert any(row["reason"] == "no_vocabulary" for row in rejects)
    again = curate(spark, pool, tmp_path / "again", vocabularies, worldwide=True, identify=True, t=3.0)
    assert selected(tmp_path / "again") == selected(run)  # reproducible
    assert again[STAGES["balance"].folder]["languages"] == balance["languages"]


def test_the_report_and_notebook_show_the_language_mix_and_each_languages_curve(multilingual, tmp_path,
                                                                                monkeypatch):
    _, run, _ = multilingual
    report = write_report(run, tmp_path / "report")
    numbers = json.loads((report.parent / "report.json").read_text())
    mix = {row["language"]: row for row in numbers["languages"]["mix"]}
    assert all(mix[language]["pool"] >= 570 and 0 < mix[language]["selected"] <= mix[language]["pool"]
               for language in MULTILINGUAL_FILES)
    assert (report.parent / "language_mix.png").is_file() and (report.parent / "language_entries.png").is_file()
    monkeypatch.setenv("METACURATE_RUN", str(run))
    notebook = nbformat.read(REPO / "notebooks" / "02_tune_t_and_eps.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    languages_cell = next(cell for cell in notebook.cells if "run.language_mix()" in cell.source)
    assert sum("image/png" in output.get("data", {}) for output in languages_cell.outputs) == 2
