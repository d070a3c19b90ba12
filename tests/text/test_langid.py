"""Language identification on real captions in five languages (Multi30k en/de/fr/cs, Flickr8k-CN zh)."""

import pytest

from pipeline.experiments.multilingual import FILES as MULTILINGUAL_FILES
from pipeline.experiments.multilingual import multilingual_captions
from pipeline.text.langid import identify, identify_all

PER_LANGUAGE = 2000


def real_captions(language: str) -> list[str]:
    return multilingual_captions(language, PER_LANGUAGE)


@pytest.mark.real_data
def test_at_least_95_percent_of_real_captions_get_their_language():
    accuracy = {}
    for language in MULTILINGUAL_FILES:
        found, scores = identify_all(real_captions(language))
        accuracy[language] = sum(code == language for code in found) / len(found)
        assert all(0.0 < score <= 1.0 for score in scores)
    print(f"language identification accuracy on {PER_LANGUAGE} real captions each: {accuracy}")
    assert min(accuracy.values()) >= 0.95, accuracy


def test_codes_are_iso_639_1_where_the_language_has_one():
    assert identify("Ein Hund rennt über eine grüne Wiese.")[0] == "de"
    assert identify("一只狗在草地上奔跑。")[0] == "zh"  # Han only: Chinese, not Japanese
    assert identify("犬が公園で走っています。")[0] == "ja"  # kana: Japanese
