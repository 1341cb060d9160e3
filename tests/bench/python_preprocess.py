#!/usr/bin/env python3
"""The Python path that `erlangshen preprocess` replaces: jieba (HMM=False) segmentation + the reference BERT
tokenizer (tests/reference/bert_tokenizer_ref.py) + word_start alignment, over the same corpus files.

Usage: python_preprocess.py VOCAB DICT INPUT...   (prints documents, tokens and seconds)
"""
import logging
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import bert_tokenizer_ref as ref  # noqa: E402

try:
    import jieba
except ImportError:
    sys.exit(77)

SPLIT = re.compile(r"([。！？!?…]+[”’」』）)】》]*)")


def main():
    vocab = ref.load_vocab(sys.argv[1])
    jieba.setLogLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        tk = jieba.Tokenizer(dictionary=os.path.abspath(sys.argv[2]))
        tk.tmp_dir = tmp
        tk.initialize()
        t0 = time.time()
        docs = tokens = 0
        for path in sys.argv[3:]:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        docs += 1
                        continue
                    parts = SPLIT.split(line)
                    sents = ["".join(parts[i:i + 2]) for i in range(0, len(parts), 2)]
                    for s in sents:
                        if not s:
                            continue
                        ids, word_start = [], []
                        for w in tk.cut(s, HMM=False):
                            first = True
                            for bt in ref.basic_tokenize(w, True):
                                for piece in ref.wordpiece(bt, vocab):
                                    ids.append(vocab[piece])
                                    word_start.append(1 if first else 0)
                                    first = False
                        tokens += len(ids)
        print("python: %d docs, %d tokens, %.1f s" % (docs, tokens, time.time() - t0))


if __name__ == "__main__":
    main()
