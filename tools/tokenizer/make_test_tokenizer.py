#!/usr/bin/env python3
"""Trains the small SentencePiece model of the tokenizer tests and writes their expected ids.

    python3 tools/tokenizer/make_test_tokenizer.py          # Debian: python3-sentencepiece

Reads tests/data/tokenizer/corpus.txt and writes, in tests/data/tokenizer/:
  test_spiece.model  a unigram model with umT5's settings as far as they are known (T5's special
                     ids: <pad> 0, </s> 1, <unk> 2, no <s>; nmt_nfkc normalisation; byte fallback,
                     as umT5's model has), trained on one thread so that it is reproducible;
  cases.json         [{"text": ..., "ids": [...]}]: at least 1,000 strings (ASCII, accents, CJK,
                     emoji, long, empty, whitespace-only, mixed) and the ids this SentencePiece
                     build gives them (no EOS: the engine's pieces(), compared in
                     tests/umt5_tokenizer_test.cpp);
  test_spiece_nofallback.model, cases_nofallback.json
                     a 500-piece model with the other settings: no byte fallback (runs of unknown
                     characters become one <unk>), nfkc_cf (case folding), no dummy prefix, extra
                     whitespace kept, user-defined symbols (kept whole, unnormalised) and a control
                     symbol; other special ids (<unk> 0, <s> 1, </s> 2, <pad> 3); 400 strings;
  test_spiece_tiny.model, cases_tiny.json
                     a 500-piece model of a few kilobytes: identity normalisation (no charsmap),
                     whitespace as a suffix, and escape_whitespaces off (no trainer flag sets it:
                     written into the normalizer_spec afterwards); 300 strings. The reader's
                     tests truncate it at every length.
"""
import json
import os
import random
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "tests", "data", "tokenizer")


def train(corpus, prefix):
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, model_type="unigram", vocab_size=1000, hard_vocab_limit=False,
        normalization_rule_name="nmt_nfkc", byte_fallback=True, character_coverage=0.9995,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1, shuffle_input_sentence=False,
        minloglevel=2)
    os.remove(prefix + ".vocab")


def train_nofallback(corpus, prefix):
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, model_type="unigram", vocab_size=500, hard_vocab_limit=False,
        normalization_rule_name="nfkc_cf", byte_fallback=False, character_coverage=0.995,
        add_dummy_prefix=False, remove_extra_whitespaces=False,
        user_defined_symbols=["<cam>", "x\u00b2", "NY"], control_symbols=["<sep>"],
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, num_threads=1, shuffle_input_sentence=False, minloglevel=2)
    os.remove(prefix + ".vocab")


def varint(v):
    out = bytearray()
    while True:
        out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not out[-1] & 0x80:
            return bytes(out)


def read_varint(b, i):
    v, shift = 0, 0
    while True:
        v |= (b[i] & 0x7F) << shift
        shift += 7
        i += 1
        if b[i - 1] < 0x80:
            return v, i


def set_escape_whitespaces_off(path):
    """Appends escape_whitespaces = false (field 5) to the model's normalizer_spec (field 3)."""
    b = open(path, "rb").read()
    out, i = bytearray(), 0
    while i < len(b):
        tag, j = read_varint(b, i)
        assert tag & 7 == 2, "top-level fields of a model are length-delimited"
        n, j = read_varint(b, j)
        body = b[j:j + n]
        if tag >> 3 == 3:
            body += varint(5 << 3) + varint(0)
        out += varint(tag) + varint(len(body)) + body
        i = j + n
    open(path, "wb").write(bytes(out))


def train_tiny(corpus, prefix):
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, model_type="unigram", vocab_size=500, hard_vocab_limit=False,
        normalization_rule_name="identity", character_coverage=0.98, treat_whitespace_as_suffix=True,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1, shuffle_input_sentence=False, minloglevel=2)
    os.remove(prefix + ".vocab")
    set_escape_whitespaces_off(prefix + ".model")


def cases(lines, rng, count=1100):
    words = " ".join(lines).split()
    ascii_words = [w for w in words if w.isascii()]
    pools = {
        "ascii": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"()-_/&#%$@",
        "accents": "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿĀāĂăĄąĆćČčĎďĘęĚěĞğŁłŃńŇňŐőŒœŘřŚśŠšŢţŤťŮůŰűŸŹźŻżŽž",
        "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现",
        "kana_hangul": "あいうえおかきくけこさしすせそたちつてとアイウエオカキクケコサシスセソ가나다라마바사아자차카타파하",
        "emoji": "😀😂🥲😍🤖👍🏽👨‍👩‍👧🐱🌊🌅🎉🇫🇷🇯🇵❤️✨🔥💦",
        "space": " \t\n\r\u00a0\u2003\u3000\u200b\u2028\x0b\x0c",
        "rare": "\u0301\u0308\ufb01\uff21\uff41\uff71\u2460\u2122\u2103\u339c\u00bd\u2126\u212b\u1e9b\u0000\x01\x7f\x85\ufeff\U0001d400\U00010348\u0e01\u05d0\u0627\u0915",
    }
    out = ["", " ", "  ", "\t", "\n", "\u3000", " \t\n ", "a", "A", "0", "&amp;", "\u00e9", "e\u0301", "\ufb01", "\U0001f600",
           "<pad>", "</s>", "<unk>", "<0x41>", "▁", "▁▁a", "a  b", " leading", "trailing ", "x" * 300]
    out += lines  # the training lines
    out += [l.upper() for l in lines] + [l.lower() for l in lines[::2]]
    names = sorted(pools)
    while len(out) < count:
        kind = rng.randrange(20)
        if kind < 5:  # words of the corpus, shuffled
            out.append(" ".join(rng.choice(words) for _ in range(rng.randint(1, 25))))
        elif kind < 8:  # ASCII words only
            out.append(" ".join(rng.choice(ascii_words) for _ in range(rng.randint(1, 20))))
        elif kind < 12:  # characters of one pool
            pool = pools[rng.choice(names)]
            out.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 40))))
        elif kind < 16:  # mixed pools
            out.append("".join(rng.choice(pools[rng.choice(names)]) for _ in range(rng.randint(1, 60))))
        elif kind == 16:  # long: several hundred pieces, over 512 for some
            out.append(" ".join(rng.choice(lines) for _ in range(rng.randint(6, 16))))
        else:  # whitespace-only or whitespace around words
            sp = pools["space"]
            pad = lambda: "".join(rng.choice(sp) for _ in range(rng.randint(0, 5)))
            out.append(pad() + (rng.choice(words) if rng.random() < 0.7 else "") + pad())
    return out


def write_cases(path, sp, texts):
    rows = [{"text": t, "ids": sp.encode(t)} for t in texts]
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows) + "\n]\n")
    return rows


# Strings aimed at the settings of the two extra models: user-defined and control symbols, runs of
# spaces kept or not, upper case, characters the small vocabularies lack.
EXTRA = ["<cam>", "a<cam>b", "<CAM>", "x\u00b2", "X\u00b2 x2", "NY", "ny NY Ny", "<sep>", "a <sep> b", "\u00b2", "  a   b  ",
         "\u2581", "a\u2581b", "\u3000a\u3000", "\ufb01ne", "\uff21\uff22", "\u00c9COLE", "STRASSE \u00df", "\U0001f600\U0001f600x",
         "\u4e00\u4e8c\u4e09", "tab\there", "new\nline", "\u00a0nbsp"]


def main():
    corpus = os.path.join(DATA, "corpus.txt")
    prefix = os.path.join(DATA, "test_spiece")
    train(corpus, prefix)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    with open(corpus, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    rows = write_cases(os.path.join(DATA, "cases.json"), sp, cases(lines, random.Random(20)))
    longest = max(len(r["ids"]) for r in rows)
    print("%d pieces, %d cases, longest %d ids" % (sp.get_piece_size(), len(rows), longest), file=sys.stderr)

    for name, trainer, seed, count in (("nofallback", train_nofallback, 21, 400), ("tiny", train_tiny, 22, 300)):
        prefix = os.path.join(DATA, "test_spiece_" + name)
        trainer(corpus, prefix)
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
        texts = EXTRA + cases(lines, random.Random(seed), count - len(EXTRA))
        rows = write_cases(os.path.join(DATA, "cases_" + name + ".json"), sp, texts)
        print("%s: %d pieces, %d bytes, %d cases" % (name, sp.get_piece_size(), os.path.getsize(prefix + ".model"), len(rows)),
              file=sys.stderr)


if __name__ == "__main__":
    main()
