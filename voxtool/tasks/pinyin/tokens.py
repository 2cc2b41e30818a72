"""Mandarin text -> pinyin CTC tokens (initial + toned final, `|` between characters).

Token layout (the log's): every character becomes [initial] + final-with-tone, `|` separates characters
and closes both ends, e.g. 你好 -> `| n i3 | h ao3 |`. Finals are the strict forms of 《汉语拼音方案》
(秋 -> iou1, 鱼 -> v2, 我 -> uo3, zero-initial syllables are a single final token); neutral tone is 5.

The inventory is fixed and versioned (`INVENTORY_VERSION`) and stored with every dataset and model, so a model
never silently meets a different token table.

Special cases, all explicit:
- 儿 is its own syllable `er` (erhua is not merged into the previous final), as pypinyin reads it.
- 嗯/呣/哼-type syllabic nasals get the whole-syllable finals `n`, `ng`, `m` (with `h` initial for hm/hng).
- Digits are spelled out in Hanzi first (cardinals, decimals, percentages, digit-by-digit for years and long
  strings), so they are pronounced, not dropped.
- Latin letters: `latin="error"` (default) makes the text unconvertible (the utterance is skipped with the reason);
  `latin="spell"` reads each letter with its common Mandarin letter name (A -> ei1, W -> da2 bu5 liu3).
- Punctuation, symbols and whitespace are removed; any other character (kana, emoji, ...) is an error.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

INVENTORY_VERSION = "pinyin-v1"
BLANK = "<b>"
SEP = "|"
TONES = "12345"
INITIALS = ("b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h",
            "j", "q", "x", "zh", "ch", "sh", "r", "z", "c", "s")
# Strict finals (pypinyin strict=True over the GB2312 set gives exactly the first 36), plus `io` (哟 yo) and the
# syllabic nasals of 嗯/呣/哼 (n, ng, m), which strict pypinyin leaves without any final.
FINALS = ("a", "o", "e", "ai", "ei", "ao", "ou", "an", "en", "ang", "eng", "ong", "er",
          "i", "ia", "ie", "iao", "iou", "ian", "in", "iang", "ing", "iong", "io",
          "u", "ua", "uo", "uai", "uei", "uan", "uen", "uang", "ueng",
          "v", "ve", "van", "vn",
          "n", "ng", "m")


class TextError(ValueError):
    """Text that cannot be turned into tokens; str(error) is the reason shown when skipping it."""


@dataclass(frozen=True)
class Syllable:
    """One syllable: `initial` ('' for zero-initial) and `final` with its tone digit (strict form, e.g. iou3)."""

    initial: str
    final: str

    @property
    def tokens(self) -> list[str]:
        return [self.initial, self.final] if self.initial else [self.final]

    @property
    def strict(self) -> str:
        """Initial + final in strict form, e.g. `iou3`, `jv2`: the unit of the syllable error rate."""
        return self.initial + self.final

    @property
    def toneless(self) -> str:
        return self.strict.rstrip(TONES)

    @property
    def pinyin(self) -> str:
        """Ordinary pinyin spelling with tone digit (iou3 -> you3, j+v2 -> ju2, n+v3 -> nv3)."""
        return display_pinyin(self.initial, self.final)


@dataclass(frozen=True)
class Unit:
    """One written unit (a Hanzi, or a spelled Latin letter) and the syllables it is read as."""

    text: str
    syllables: tuple[Syllable, ...]


# ----------------------------------------------------------------------------------------------- vocabulary

class Vocab:
    """Fixed token table: blank (id 0), `|` (id 1), 21 initials, finals x 5 tones."""

    def __init__(self, tokens: list[str] | None = None, version: str = INVENTORY_VERSION):
        self.tokens = list(tokens) if tokens is not None else default_tokens()
        self.version = version
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if self.tokens[0] != BLANK or self.tokens[1] != SEP:
            raise ValueError("vocabulary must start with the blank and `|`")
        self.blank = 0
        self.sep = 1

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str]) -> list[int]:
        try:
            return [self.index[t] for t in tokens]
        except KeyError as e:
            raise TextError(f"token {e.args[0]!r} is not in inventory {self.version}") from None

    def decode(self, ids) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def to_dict(self) -> dict:
        return {"version": self.version, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        return cls(list(d["tokens"]), str(d["version"]))


def default_tokens() -> list[str]:
    return [BLANK, SEP, *INITIALS, *(f + t for f in FINALS for t in TONES)]


# ----------------------------------------------------------------------------------------------- syllables

_ZERO_INITIAL = {  # surface spelling -> strict final (y/w are not initials in strict pinyin)
    "yi": "i", "ya": "ia", "ye": "ie", "yao": "iao", "you": "iou", "yan": "ian", "yin": "in", "yang": "iang",
    "ying": "ing", "yong": "iong", "yo": "io", "yu": "v", "yue": "ve", "yuan": "van", "yun": "vn",
    "wu": "u", "wa": "ua", "wo": "uo", "wai": "uai", "wei": "uei", "wan": "uan", "wen": "uen", "wang": "uang",
    "weng": "ueng",
}
_AFTER_INITIAL = {"iu": "iou", "ui": "uei", "un": "uen", "ue": "ve"}
_JQX_U = {"u": "v", "ue": "ve", "uan": "van", "un": "vn"}
_NASAL = re.compile(r"^(h?)(m|n|ng)$")
_SYLLABLE = re.compile(r"^([a-zü:ê]+)([1-5]?)$")


def parse_syllable(text: str) -> Syllable:
    """Parse one pinyin syllable with tone digit (`zhong1`, `lve4`, `lüe4`, `you3`, `r5`, `n2`, `de`)."""
    s = text.strip().lower().replace("u:", "v").replace("ü", "v").replace("ê", "e")
    m = _SYLLABLE.match(s)
    if not m:
        raise TextError(f"not a pinyin syllable: {text!r}")
    body, tone = m.group(1), m.group(2) or "5"
    if body == "r":  # AISHELL-3 writes erhua as a separate `r`
        body = "er"
    nasal = _NASAL.match(body)
    if nasal:
        return Syllable(nasal.group(1), nasal.group(2) + tone)
    initial = ""
    if body in _ZERO_INITIAL:
        final = _ZERO_INITIAL[body]
    else:
        for cand in sorted(INITIALS, key=len, reverse=True):
            if body.startswith(cand) and len(body) > len(cand):
                initial = cand
                break
        final = body[len(initial):]
        if initial in ("j", "q", "x"):
            final = _JQX_U.get(final, final)
        final = _AFTER_INITIAL.get(final, final)
    if final not in FINALS or final in ("n", "ng", "m"):
        raise TextError(f"not a pinyin syllable: {text!r}")
    return Syllable(initial, final + tone)


_DISPLAY_ZERO = {v: k for k, v in _ZERO_INITIAL.items()}
_DISPLAY_AFTER = {"iou": "iu", "uei": "ui", "uen": "un"}


def display_pinyin(initial: str, final: str) -> str:
    """Strict (initial, toned final) -> ordinary pinyin with tone digit (ü written v)."""
    tone = final[-1] if final and final[-1] in TONES else ""
    base = final[:-1] if tone else final
    if base in ("n", "ng", "m"):
        return initial + base + tone
    if not initial:
        return _DISPLAY_ZERO.get(base, base) + tone
    if initial in ("j", "q", "x") and base.startswith("v"):
        base = "u" + base[1:]
    base = _DISPLAY_AFTER.get(base, base)
    return initial + base + tone


# ----------------------------------------------------------------------------------------------- numbers

_DIGITS = "零一二三四五六七八九"


def _digitwise(s: str) -> str:
    return "".join(_DIGITS[int(c)] for c in s)


def _below_10000(n: int, leading: bool) -> str:
    """0 < n < 10000 -> Hanzi; `leading`: the first section (10-19 read 十X, not 一十X)."""
    out, zero = [], False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = n // value % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out.append("零")
            zero = False
        if not (d == 1 and unit == "十" and not out and leading):
            out.append(_DIGITS[d])
        out.append(unit)
    return "".join(out)


def cardinal(n: int) -> str:
    """Non-negative integer -> Hanzi cardinal (10086 -> 一万零八十六, 15 -> 十五)."""
    if n == 0:
        return "零"
    parts: list[str] = []
    sections = []
    while n:
        sections.append(n % 10000)
        n //= 10000
    if len(sections) > 3:
        raise TextError("number too large to spell")
    units = ["", "万", "亿"]
    need_zero = False
    for i in range(len(sections) - 1, -1, -1):
        sec = sections[i]
        if sec == 0:
            need_zero = bool(parts)
            continue
        if parts and (need_zero or sec < 1000):
            parts.append("零")
        parts.append(_below_10000(sec, leading=not parts) + units[i])
        need_zero = False
    return "".join(parts)


_NUMBER = re.compile(r"(\d+)(?:\.(\d+))?(%|％)?(年)?")


def spell_numbers(text: str) -> str:
    """Spell ASCII digits (after NFKC) as Hanzi: decimals (3.5 -> 三点五), percent (50% -> 百分之五十),
    years and long or zero-led strings digit by digit (2017年 -> 二零一七年, 13800138000), else cardinal."""

    def repl(m: re.Match) -> str:
        whole, frac, pct, year = m.group(1), m.group(2), m.group(3), m.group(4)
        if year and frac is None and pct is None and len(whole) in (2, 4):
            return _digitwise(whole) + "年"
        if len(whole) > 9 or (len(whole) > 1 and whole.startswith("0")):
            spoken = _digitwise(whole)
        else:
            spoken = cardinal(int(whole))
        if frac is not None:
            spoken += "点" + _digitwise(frac)
        if pct:
            spoken = "百分之" + spoken
        return spoken + (year or "")

    return _NUMBER.sub(repl, text)


# ----------------------------------------------------------------------------------------------- text

LETTER_NAMES = {  # common Mandarin readings of Latin letter names, as pinyin syllables
    "A": "ei1", "B": "bi4", "C": "xi1", "D": "di4", "E": "yi4", "F": "ai2 fu5", "G": "ji4", "H": "ai1 qi1",
    "I": "ai4", "J": "jie4", "K": "kai4", "L": "ai2 le5", "M": "ai2 mu5", "N": "en1", "O": "ou1", "P": "pi4",
    "Q": "kiu1", "R": "a4", "S": "ai2 si5", "T": "ti4", "U": "you1", "V": "wei1", "W": "da2 bu5 liu3",
    "X": "ai2 ke4 si5", "Y": "wai4", "Z": "zei4",
}


def is_hanzi(ch: str) -> bool:
    cp = ord(ch)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2EBEF
            or 0xF900 <= cp <= 0xFAFF or ch == "〇")


def _removable(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PSZC"


def text_to_units(text: str, *, latin: str = "error", tone_sandhi: bool = True) -> list[Unit]:
    """Hanzi text -> units with syllables (pypinyin, strict, neutral tone 5, optional surface tone sandhi).

    Raises TextError with the reason when the text has no speakable content or contains what cannot be read.
    Word spaces in the transcript are kept as segmentation hints for pypinyin (polyphones, sandhi)."""
    from pypinyin import Style, lazy_pinyin

    if latin not in ("error", "spell"):
        raise ValueError(f"latin must be 'error' or 'spell', not {latin!r}")
    norm = spell_numbers(unicodedata.normalize("NFKC", text))
    pieces: list[tuple[str, str]] = []  # ("hanzi", word) | ("letter", A)
    word: list[str] = []

    def flush() -> None:
        if word:
            pieces.append(("hanzi", "".join(word)))
            word.clear()

    bad_latin: list[str] = []
    for ch in norm:
        if is_hanzi(ch):
            word.append(ch)
        elif ch.isascii() and ch.isalpha():
            flush()
            bad_latin.append(ch)
            pieces.append(("letter", ch.upper()))
        elif _removable(ch):
            flush()
        else:
            raise TextError(f"unsupported character {ch!r}")
    flush()
    if bad_latin and latin == "error":
        raise TextError(f"contains Latin letters {''.join(bad_latin)!r}")
    words = [p for kind, p in pieces if kind == "hanzi"]
    readings: list[str] = []
    if words:
        readings = lazy_pinyin(words, style=Style.TONE3, neutral_tone_with_five=True, tone_sandhi=tone_sandhi,
                               errors=lambda s: ["?"] * len(s))
    n_chars = sum(len(w) for w in words)
    if len(readings) != n_chars:  # pypinyin merged or split something: never guess the alignment
        raise TextError("pypinyin returned a different number of syllables than characters")
    units: list[Unit] = []
    pos = 0
    for kind, p in pieces:
        if kind == "letter":
            units.append(Unit(p, tuple(parse_syllable(s) for s in LETTER_NAMES[p].split())))
            continue
        for ch in p:
            reading = readings[pos]
            pos += 1
            if reading == "?":
                raise TextError(f"no pinyin for {ch!r}")
            units.append(Unit(ch, (parse_syllable(reading),)))
    if not units:
        raise TextError("no speakable text")
    return units


def pinyin_to_units(pinyin: str, hanzi: str | None = None) -> list[Unit]:
    """Given pinyin (e.g. AISHELL-3 `guang3 zhou1`) -> units; `hanzi` (same length) labels them."""
    syllables = [parse_syllable(s) for s in pinyin.split()]
    if not syllables:
        raise TextError("no speakable text")
    chars = [c for c in (hanzi or "") if not _removable(c)]
    if hanzi is not None and len(chars) != len(syllables):
        raise TextError(f"{len(chars)} characters but {len(syllables)} pinyin syllables")
    labels = chars if hanzi is not None else [s.pinyin for s in syllables]
    return [Unit(t, (s,)) for t, s in zip(labels, syllables, strict=True)]


_PINYIN_LINE = re.compile(r"^[a-zü:ê]+[1-5](\s+[a-zü:ê]+[1-5])*$")


def looks_like_pinyin(text: str) -> bool:
    """True for a line of tone-numbered pinyin syllables (`ni3 hao3`), which is then used without G2P."""
    return bool(_PINYIN_LINE.match(text.strip().lower()))


def units_to_tokens(units: list[Unit]) -> list[str]:
    """Units -> `| i f | f | i f |` (one `|` between syllables and at both ends)."""
    out = [SEP]
    for u in units:
        for s in u.syllables:
            out.extend(s.tokens)
            out.append(SEP)
    return out


def text_to_tokens(text: str, **kw) -> list[str]:
    return units_to_tokens(text_to_units(text, **kw))


def units_to_pinyin(units: list[Unit]) -> str:
    """Space-joined ordinary pinyin of all syllables (what datasets store for reading)."""
    return " ".join(s.pinyin for u in units for s in u.syllables)


def group_syllables(tokens: list[str]) -> list[list[str]]:
    """Decoded tokens (no blanks) -> groups between `|` (normally [initial, final] or [final])."""
    groups: list[list[str]] = []
    cur: list[str] = []
    for t in tokens:
        if t == SEP:
            if cur:
                groups.append(cur)
            cur = []
        elif t != BLANK:
            cur.append(t)
    if cur:
        groups.append(cur)
    return groups


def group_label(group: list[str]) -> str:
    """A decoded token group -> its pinyin spelling (ill-formed groups keep their tokens joined by '+')."""
    if len(group) == 2 and group[0] in INITIALS and group[1] not in INITIALS:
        return display_pinyin(group[0], group[1])
    if len(group) == 1 and group[0] not in INITIALS:
        return display_pinyin("", group[0])
    return "+".join(group)


def syllable_strings(tokens: list[str], toned: bool = True) -> list[str]:
    """Decoded tokens -> strict syllable strings (initial+final) for the syllable error rate."""
    out = ["".join(g) for g in group_syllables(tokens)]
    return out if toned else [s.rstrip(TONES) for s in out]
