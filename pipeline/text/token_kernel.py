"""The compiled walk's Python side: its byte tables, and whether it is installed here (MISSING says why not).

The walk itself (native/metacurate_walk.pyx) takes Arrow string buffers in and gives Arrow list<int32> buffers
out, no Python object per caption. A caption's bytes are cut into tokens, each token is looked up in the
automaton's token table, and the tokens walk the automaton (pipeline.text.token_automaton). A caption's entry
ids come out sorted and distinct, as Matcher.match gives them.
- metaclip mode cuts tokens as MetaCLIP's `spacing` does: space, tab, newline and carriage return end a token
  (two in a row make an empty one), and each of , . ; : ? ! ` is a token of its own.
- default mode first writes an ASCII caption's default_normalize form into a scratch buffer (lowercase, the
  wrapped characters as tokens, possessive 's and lone quotes split off), then cuts it at whitespace, skipping
  empty tokens; a caption with other characters comes in already normalized (by Python) and is only cut.
"""

from __future__ import annotations

import numpy as np

from pipeline.text.token_automaton import FORMAT_VERSION, TokenAutomaton
from pipeline.text.wrapped import DEFAULT_WRAPPED, METACLIP_SPACED, METACLIP_WRAPPED, OWN_TOKEN, REGULAR, SEPARATOR

try:
    import metacurate_walk
except ImportError as error:  # not built here: a Spark worker with only the shipped zip, or no compiler at install
    metacurate_walk, MISSING = None, f"the compiled walk (module metacurate_walk) is not installed here ({error})"
else:
    MISSING = None if metacurate_walk.LAYOUT_VERSION == FORMAT_VERSION else (
        f"the compiled walk was built for automaton layout {metacurate_walk.LAYOUT_VERSION}, not "
        f"{FORMAT_VERSION}: rebuild it with `make install` (or pip install -e .)")

def _byte_classes(separators: str, own_tokens: str = "") -> np.ndarray:
    classes = np.full(256, REGULAR, np.uint8)
    classes[[ord(char) for char in separators]] = SEPARATOR
    classes[[ord(char) for char in own_tokens]] = OWN_TOKEN
    return classes


METACLIP_CLASSES = _byte_classes(" " + "".join(METACLIP_SPACED), "".join(METACLIP_WRAPPED))
_ASCII_WHITESPACE = "".join(char for char in map(chr, range(128)) if char.isspace())  # where str.split() cuts
NORMALIZED_CLASSES = _byte_classes(_ASCII_WHITESPACE)  # the normalized text is cut there and its runs collapse
# default_normalize on ASCII: the wrapped characters stand as tokens of their own
DEFAULT_ASCII_CLASSES = _byte_classes(_ASCII_WHITESPACE, "".join(char for char in DEFAULT_WRAPPED if char.isascii()))
_WORD = np.zeros(256, np.uint8)  # Python's \w on ASCII
_WORD[[ord(char) for char in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"]] = 1


def match_rows(automaton: TokenAutomaton, data: np.ndarray, offsets: np.ndarray, valid: np.ndarray,
               mode: str, ascii_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of the list<int32> of each caption's entry ids. In default mode, `ascii_rows` marks
    the captions to normalize here; the others must come normalized. Only where MISSING is None."""
    if mode == "metaclip":
        classes, skip_empty, ascii_rows = METACLIP_CLASSES, False, np.zeros(len(valid), np.bool_)
    else:
        classes, skip_empty = NORMALIZED_CLASSES, True
    return metacurate_walk.match_rows(data, offsets, valid.view(np.uint8), ascii_rows.view(np.uint8), classes,
                                      skip_empty, DEFAULT_ASCII_CLASSES, _WORD, automaton)
