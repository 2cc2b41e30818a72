"""Tokenizer goldens: initials + toned finals with `|`, erhua, 嗯/呣, digits, Latin letters, punctuation."""

from __future__ import annotations

import pytest

from voxtool.tasks.pinyin.tokens import (
    BLANK,
    INVENTORY_VERSION,
    SEP,
    TextError,
    Vocab,
    cardinal,
    display_pinyin,
    group_label,
    parse_syllable,
    pinyin_to_units,
    spell_numbers,
    syllable_strings,
    text_to_tokens,
    text_to_units,
)


def toks(text: str, **kw) -> str:
    return " ".join(text_to_tokens(text, **kw))


@pytest.mark.parametrize("text, expected", [
    ("你好", "| n i2 | h ao3 |"),  # surface tone sandhi 3-3 -> 2-3
    ("中国", "| zh ong1 | g uo2 |"),
    ("我们的", "| uo3 | m en5 | d e5 |"),  # zero initial, neutral tone as 5
    ("秋雨月归论", "| q iou1 | v3 | ve4 | g uei1 | l uen4 |"),  # strict finals
    ("女绿", "| n v3 | l v4 |"),
    ("花儿", "| h ua1 | er2 |"),  # erhua: 儿 is its own syllable
    ("一会儿", "| i1 | h uei4 | er5 |"),  # (pypinyin leaves this 一 in tone 1)
    ("嗯", "| n2 |"),  # syllabic nasals have no pypinyin final: special syllables
    ("呣", "| m2 |"),
    ("哟", "| io1 |"),
    ("一会儿，我们走！", "| i1 | h uei4 | er5 | uo3 | m en5 | z ou3 |"),  # punctuation removed
    ("重庆 银行", "| ch ong2 | q ing4 | in2 | h ang2 |"),  # polyphones via phrases, word spaces as hints
])
def test_golden_tokens(text, expected):
    assert toks(text) == expected


def test_without_sandhi_keeps_citation_tones():
    assert toks("你好", tone_sandhi=False) == "| n i3 | h ao3 |"


@pytest.mark.parametrize("text, spoken", [
    ("我有3个", "我有三个"),
    ("2017年", "二零一七年"),
    ("50%", "百分之五十"),
    ("3.14", "三点一四"),
    ("10086", "一万零八十六"),
    ("13800138000", "一三八零零一三八零零零"),
    ("007", "零零七"),
])
def test_digits_are_spelled_not_dropped(text, spoken):
    assert spell_numbers(text) == spoken


def test_full_width_digits_and_digits_in_tokens():
    assert toks("我有3个") == "| uo3 | iou3 | s an1 | g e4 |"
    assert toks("１２") == toks("十二")


@pytest.mark.parametrize("n, hanzi", [
    (0, "零"), (10, "十"), (15, "十五"), (20, "二十"), (101, "一百零一"), (110, "一百一十"), (1001, "一千零一"),
    (10000, "一万"), (100000, "十万"), (123456789, "一亿二千三百四十五万六千七百八十九"), (100010000, "一亿零一万"),
])
def test_cardinals(n, hanzi):
    assert cardinal(n) == hanzi


def test_latin_letters_are_explicit():
    with pytest.raises(TextError, match="Latin letters 'OK'"):
        text_to_units("卡拉OK")
    with pytest.raises(TextError, match="Latin"):
        text_to_units("ＡＢ")  # full-width letters normalise to Latin
    assert toks("卡拉OK", latin="spell") == "| k a3 | l a1 | ou1 | k ai4 |"
    units = text_to_units("W", latin="spell")
    assert [u.text for u in units] == ["W"] and len(units[0].syllables) == 3


def test_unreadable_text_is_an_error_with_a_reason():
    with pytest.raises(TextError, match="unsupported character"):
        text_to_units("你好あ")
    with pytest.raises(TextError, match="no speakable"):
        text_to_units("，。！ ")


@pytest.mark.parametrize("syl, initial, final", [
    ("zhong1", "zh", "ong1"), ("lve4", "l", "ve4"), ("lüe4", "l", "ve4"), ("lue4", "l", "ve4"),
    ("yu2", "", "v2"), ("ju2", "j", "v2"), ("quan2", "q", "van2"), ("xun4", "x", "vn4"), ("you3", "", "iou3"),
    ("liu2", "l", "iou2"), ("gui4", "g", "uei4"), ("lun2", "l", "uen2"), ("wo3", "", "uo3"), ("r5", "", "er5"),
    ("hm5", "h", "m5"), ("ng2", "", "ng2"), ("de", "d", "e5"), ("yo1", "", "io1"),
])
def test_parse_syllable(syl, initial, final):
    s = parse_syllable(syl)
    assert (s.initial, s.final) == (initial, final)


def test_parse_rejects_non_syllables():
    for bad in ("xyz1", "abc", "zh1", "ni9"):
        with pytest.raises(TextError):
            parse_syllable(bad)


def test_display_round_trip():
    for syl in ("zhong1", "you3", "ju2", "nv3", "wei4", "yuan2", "er5", "n2", "si1", "liu2", "hng5"):
        s = parse_syllable(syl)
        assert display_pinyin(s.initial, s.final) == syl


def test_inventory_is_fixed_and_versioned():
    v = Vocab()
    assert v.version == INVENTORY_VERSION == "pinyin-v1"
    assert v.tokens[:4] == [BLANK, SEP, "b", "p"] and len(v) == 223
    assert Vocab.from_dict(v.to_dict()).tokens == v.tokens
    with pytest.raises(TextError):
        v.encode(["q", "xx9"])


def test_every_gb2312_reading_is_in_the_inventory():
    from pypinyin import Style, pinyin

    vocab = Vocab()
    chars = []
    for cp in range(0x4E00, 0x9FA6):
        try:
            chr(cp).encode("gb2312")
        except UnicodeEncodeError:
            continue
        chars.append(chr(cp))
    assert len(chars) == 6763
    readings = pinyin("".join(chars), style=Style.TONE3, neutral_tone_with_five=True)
    strict_finals = pinyin("".join(chars), style=Style.FINALS_TONE3, strict=True, neutral_tone_with_five=True)
    for ch, (r,), (f,) in zip(chars, readings, strict_finals, strict=True):
        s = parse_syllable(r)
        vocab.encode(s.tokens)
        if r[:-1] == "yo":
            assert s.final == "io" + r[-1]  # pypinyin strict drops the medial of yo (-> o); we keep io
        elif f:  # pypinyin has no final for syllabic nasals (嗯 n2): ours are special syllables
            assert s.final == f, ch
        else:
            assert s.final[:-1] in ("n", "ng", "m"), ch


def test_given_pinyin_units():
    units = pinyin_to_units("guang3 zhou1", "广州")
    assert [u.text for u in units] == ["广", "州"] and units[0].syllables[0].tokens == ["g", "uang3"]
    with pytest.raises(TextError, match="characters but"):
        pinyin_to_units("guang3 zhou1", "广州市")


def test_syllable_strings_and_labels():
    tokens = "| n i3 | h ao3 | uo3 |".split()
    assert syllable_strings(tokens) == ["ni3", "hao3", "uo3"]
    assert syllable_strings(tokens, toned=False) == ["ni", "hao", "uo"]
    assert group_label(["uo3"]) == "wo3" and group_label(["j", "v2"]) == "ju2" and group_label(["n", "h"]) == "n+h"
