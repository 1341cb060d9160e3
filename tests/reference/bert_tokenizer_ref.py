#!/usr/bin/env python3
"""Reference BERT tokenizer, written from the published algorithm (Google BERT tokenization.py:
BasicTokenizer + WordpieceTokenizer), independent of the C++ code under test.

Usage: bert_tokenizer_ref.py VOCAB {lower|cased} < texts.jsonl > tokens.jsonl
Each input line is a JSON string; each output line is {"tokens": [...], "ids": [...]}.
"""
import json
import sys
import unicodedata


def load_vocab(path):
    # Split on "\n" only: the Chinese vocab has U+2028 entries that str.splitlines() would break.
    text = open(path, "rb").read().decode("utf-8")
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    vocab = {}
    for i, t in enumerate(tokens):
        vocab[t] = i
    return vocab


def is_whitespace(c):
    if c in " \t\n\r":
        return True
    return unicodedata.category(c) == "Zs"


def is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")


def is_punctuation(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def is_chinese_char(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or
            0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or
            0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def clean_text(text):
    out = []
    for c in text:
        cp = ord(c)
        if cp == 0 or cp == 0xFFFD or is_control(c):
            continue
        out.append(" " if is_whitespace(c) else c)
    return "".join(out)


def tokenize_chinese_chars(text):
    out = []
    for c in text:
        if is_chinese_char(ord(c)):
            out += [" ", c, " "]
        else:
            out.append(c)
    return "".join(out)


def strip_accents(text):
    text = unicodedata.normalize("NFD", text)
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


def split_on_punc(text):
    out, cur = [], []
    for c in text:
        if is_punctuation(c):
            if cur:
                out.append("".join(cur))
                cur = []
            out.append(c)
        else:
            cur.append(c)
    if cur:
        out.append("".join(cur))
    return out


def basic_tokenize(text, lower):
    text = tokenize_chinese_chars(clean_text(text))
    split = []
    for tok in text.strip().split():
        if lower:
            tok = strip_accents(tok.lower())
        split.extend(split_on_punc(tok))
    return " ".join(split).strip().split()


def wordpiece(word, vocab, max_chars=100):
    if len(word) > max_chars:
        return ["[UNK]"]
    out, start = [], 0
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            sub = word[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        out.append(cur)
        start = end
    return out


def main():
    vocab = load_vocab(sys.argv[1])
    lower = sys.argv[2] == "lower"
    for line in sys.stdin:
        text = json.loads(line)
        toks = []
        for w in basic_tokenize(text, lower):
            toks.extend(wordpiece(w, vocab))
        print(json.dumps({"tokens": toks, "ids": [vocab[t] for t in toks]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
