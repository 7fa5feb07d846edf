"""CJK-aware answer post-processing: split into sentences, cut a repeated-sentence loop, trim
an unfinished last sentence, limit the number of sentences.

A sentence ends at 。！？!?… (a ； does not end one), at a newline, or at a `.` that is not
inside a number (3.14), not after a one-letter or listed abbreviation (e.g., Dr.) or a list
number ("2. "), and is followed by whitespace or the end of text. CJK text has no spaces,
so 。！？ end a sentence wherever they are.
"""

from __future__ import annotations

import re

# Abbreviations whose trailing "." does not end a sentence (lowercased, without the dot).
ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "ms", "fig", "no", "approx"}
)
_CLOSERS = "\"'”’）)】」』"
_HARD_END = re.compile(r"[。！？!?…]+[" + re.escape(_CLOSERS) + r"]*|\n+")
_DOT = re.compile(r"\.+[" + re.escape(_CLOSERS) + r"]*(?=\s|$)")


_LIST_MARKER = re.compile(r"(?:^|\n)[ \t]*\d+$")


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the dot at `dot` does not end a sentence: after a one-letter word or a
    listed abbreviation, or after a list number at a line's start ("2. Second")."""
    if _LIST_MARKER.search(text[:dot]):
        return True
    word = re.search(r"([A-Za-z][A-Za-z.]*)$", text[:dot])
    if word is None:
        return False
    token = word.group(1).lower()
    return len(token) == 1 or token in ABBREVIATIONS


def sentence_ends(text: str) -> list[int]:
    """Offsets just past each sentence end in `text`, ascending."""
    ends = {m.end() for m in _HARD_END.finditer(text)}
    for m in _DOT.finditer(text):
        if not _is_abbreviation(text, m.start()):
            ends.add(m.end())
    return sorted(ends)


def split_sentences(text: str) -> list[str]:
    """`text` cut after each sentence end; the pieces concatenate back to `text`. The last
    piece is an unfinished sentence when `text` does not end at a sentence end."""
    pieces, start = [], 0
    for end in sentence_ends(text):
        pieces.append(text[start:end])
        start = end
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _finished(piece: str) -> bool:
    return bool(sentence_ends(piece)) and sentence_ends(piece)[-1] == len(piece)


def trim_unfinished(text: str) -> str:
    """`text` without its unfinished last sentence; unchanged if it has no finished one."""
    pieces = split_sentences(text)
    if len(pieces) > 1 and not _finished(pieces[-1]):
        return "".join(pieces[:-1]).rstrip()
    return text


def cut_repeats(text: str) -> str:
    """`text` up to the first sentence that repeats an earlier one (a generation loop)."""
    seen: set[str] = set()
    kept: list[str] = []
    for piece in split_sentences(text):
        key = piece.strip()
        if key and key in seen:
            return "".join(kept).rstrip()
        if key:
            seen.add(key)
        kept.append(piece)
    return text


def limit_sentences(text: str, count: int) -> str:
    """The first `count` sentences of `text` (blank pieces do not count)."""
    kept: list[str] = []
    seen = 0
    for piece in split_sentences(text):
        if piece.strip():
            if seen == count:
                return "".join(kept).rstrip()
            seen += 1
        kept.append(piece)
    return text


def shape_text(text: str, *, trim: bool, repeats: bool, max_sentences: int) -> str:
    """Apply the enabled steps: loop cut, then sentence limit, then unfinished-tail trim."""
    if repeats:
        text = cut_repeats(text)
    if max_sentences:
        text = limit_sentences(text, max_sentences)
    if trim:
        text = trim_unfinished(text)
    return text
