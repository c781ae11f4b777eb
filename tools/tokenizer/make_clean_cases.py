#!/usr/bin/env python3
"""Writes tests/data/tokenizer/clean_cases.json: prompts and what Wan2.1's clean-up makes of them.

    pip install ftfy==6.3.1 regex   # or Debian's python3-regex; ftfy is not packaged in Debian 12
    python3 tools/tokenizer/make_clean_cases.py

The clean-up is Wan's (wan/modules/tokenizers.py, clean='whitespace'): ftfy.fix_text, html.unescape
twice, strip, every run of the regex module's \\s made one space, strip. The engine does not
reproduce ftfy's mojibake repair or its NFC step (docs/wan.md, "Tokenizer"), so only prompts on
which those make no difference are kept: ftfy with fix_encoding and normalization off gives the
same text. The script prints how many it left out. Each row: {"text": ..., "clean": ...}.
"""
import html
import json
import os
import random
import sys

import ftfy
import regex

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "data", "tokenizer", "clean_cases.json")


def wan_clean(text, **ftfy_options):
    text = ftfy.fix_text(text, **ftfy_options)
    text = html.unescape(html.unescape(text)).strip()
    return regex.sub(r"\s+", " ", text).strip()


def prompts(rng):
    entities = ["&amp;", "&amp", "&AMP;", "&lt;", "&gt", "&quot;", "&apos;", "&nbsp;", "&nbsp", "&eacute;", "&Eacute;",
                "&EACUTE;", "&notit;", "&notin;", "&not", "&copy", "&copysr;", "&amp;amp;", "&amp;amp;amp;lt;",
                "&#65;", "&#x41;", "&#X41", "&#0;", "&#128;", "&#x80;", "&#150;", "&#xD800;", "&#x110000;",
                "&#99999999999999999999;", "&#1;", "&#11;", "&#x1F600;", "&#59;", "&#x3B;", "&#;", "&#x;", "&#xZ;",
                "&;", "&", "&&", "& amp;", "&zwnj;", "&ThickSpace;", "&NewLine;", "&Tab;", "&lt", "&LT", "&frac12",
                "&frac12;", "&ngE;", "&nvlt;", "&bne;", "&thinsp;", "&emsp;", "&ensp;", "&abcdefghijklmnopqrstuvwxyz0123456789;",
                "&" + "a" * 40 + ";", "&#" + "1" * 30 + ";", "&Uuml;", "&UUML;", "&uuml", "&#x2028;", "&#x85;", "&#133;"]
    spaces = [" ", "  ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0",
              "\u1680", "\u2000", "\u2007", "\u200a", "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff"]
    specials = ["\u201c", "\u201d", "\u2018", "\u2019", "\u201a", "\u201b", "\u201e", "\u201f", "\u02bc", "\ufb01", "\ufb02",
                "\ufb00", "\u0132", "\uff21", "\uff41", "\uff10", "\uff01", "\uff71", "\uffa1", "\u3000", "\x1b[31m", "\x1b[0m",
                "\x1b[1;32m", "\x1b[", "\x1b[12", "\x1b[\u0663m", "\x00", "\x01", "\x08", "\x7f", "\u206a", "\ufff9",
                "\ufffc", "\x80", "\x81", "\x8d", "\x93", "\x94", "\x9f", "<", ">", "<b>", "</s>", "'", '"', "\u2026"]
    words = ["a", "cat", "surfing", "the", "wave", "café", "naïve", "猫", "波", "🐱", "🌊", "Ünïcödé", "東京", "Москва",
             "x", "42", "3.14", "-", ",", ".", "!", "?", "(", ")"]
    out = list(entities) + list(spaces) + list(specials)
    out += [w + e + w for e in entities for w in ("x", " ")]
    out += ["line one\nline two &amp; more", "a<b\nc &amp; d", "first &amp;\nthen <\nthen &amp;", "&amp;\n<\n&amp;",
            " \t leading and trailing \n ", "", "   ", "\n\n\n", "a\r\nb\rc\u2028d\u2029e\x85f"]
    pool = entities + spaces + specials + words
    while len(out) < 2000:
        out.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 24))))
    return out


def main():
    rng = random.Random(7)
    rows, skipped = [], 0
    for t in prompts(rng):
        want = wan_clean(t)
        if want != wan_clean(t, fix_encoding=False, normalization=None):
            skipped += 1
            continue
        rows.append({"text": t, "clean": want})
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows) + "\n]\n")
    print("ftfy %s: %d cases written, %d left out (mojibake repair or NFC changes them)"
          % (ftfy.__version__, len(rows), skipped), file=sys.stderr)


if __name__ == "__main__":
    main()
