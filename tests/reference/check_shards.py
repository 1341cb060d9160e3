#!/usr/bin/env python3
"""Independent check of HDF5 corpus shards with h5py (DESIGN §4).

Usage: check_shards.py VOCAB DICT SHARD_DIR INPUT...
Reads every shard, checks datasets, dtypes, shapes, attributes and offsets, then compares each stored document
with the source text: token ids equal the reference tokenizer's (tests/reference/bert_tokenizer_ref.py) on the
document's lines, the tokens decode back to the normalised text, and for all-CJK lines word_start equals the
jieba (HMM=False) word boundaries. Prints one JSON object; exit 77 when h5py/jieba are missing.
"""
import glob
import json
import logging
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_tokenizer_ref as ref  # noqa: E402

try:
    import h5py
    import jieba
    import numpy as np
except ImportError:
    sys.exit(77)


def source_documents(paths):
    for path in paths:
        doc = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n").rstrip("\r")
                if line.strip(" \t\r\f\v"):
                    doc.append(line)
                elif doc:
                    yield doc
                    doc = []
        if doc:
            yield doc


def main():
    vocab_path, dict_path, shard_dir = sys.argv[1:4]
    inputs = sys.argv[4:]
    vocab = ref.load_vocab(vocab_path)
    inv = {i: t for t, i in vocab.items()}
    jieba.setLogLevel(logging.ERROR)
    result = {"errors": [], "shards": [], "docs_checked": 0, "ids_equal": 0, "text_equal": 0,
              "word_start_lines": 0, "word_start_equal": 0}
    err = result["errors"].append
    stored = []  # (shard, doc) token arrays
    for path in sorted(glob.glob(os.path.join(shard_dir, "*.h5"))):
        with h5py.File(path, "r") as f:
            info = {"path": os.path.basename(path)}
            want = {"tokens": ("int32", 1), "word_start": ("uint8", 1), "sentence_offsets": ("int64", 1),
                    "doc_offsets": ("int64", 1), "spans": ("int32", 2)}
            for name, (dtype, rank) in want.items():
                if name not in f:
                    err("%s: missing %s" % (path, name))
                    continue
                if str(f[name].dtype) != dtype or f[name].ndim != rank:
                    err("%s: %s is %s/%d" % (path, name, f[name].dtype, f[name].ndim))
            if f.attrs.get("format") != "erlangshen-corpus":
                err("%s: format attr %r" % (path, f.attrs.get("format")))
            for a in ["version", "vocab_sha256", "vocab_size", "lowercase", "segmenter", "lexicon_sha256", "source"]:
                if a not in f.attrs:
                    err("%s: missing attribute %s" % (path, a))
            tok = f["tokens"][:]
            ws = f["word_start"][:]
            so = f["sentence_offsets"][:]
            do = f["doc_offsets"][:]
            sp = f["spans"][:]
            if sp.shape[1:] != (3,):
                err("%s: spans shape %s" % (path, sp.shape))
            if len(ws) != len(tok) or so[0] != 0 or so[-1] != len(tok) or np.any(np.diff(so) <= 0):
                err("%s: sentence_offsets inconsistent" % path)
            if do[0] != 0 or do[-1] != len(so) - 1 or np.any(np.diff(do) <= 0):
                err("%s: doc_offsets inconsistent" % path)
            if len(sp) and (np.any(sp[:, 0] >= sp[:, 1]) or sp[:, 1].max() > len(tok) or
                            not set(np.unique(sp[:, 2])) <= {1, 2}):
                err("%s: spans out of range" % path)
            if len(sp) and np.any(ws[sp[:, 0]] != 1):
                err("%s: a span does not begin on a word start" % path)
            info.update(tokens=int(len(tok)), sentences=int(len(so) - 1), docs=int(len(do) - 1), spans=int(len(sp)),
                        vocab_sha256=str(f.attrs.get("vocab_sha256")))
            result["shards"].append(info)
            for d in range(len(do) - 1):
                a, b = so[do[d]], so[do[d + 1]]
                stored.append((tok[a:b], ws[a:b]))
    with tempfile.TemporaryDirectory() as tmp:
        tk = jieba.Tokenizer(dictionary=os.path.abspath(dict_path))
        tk.tmp_dir = tmp
        tk.initialize()
        k = 0
        for doc in source_documents(inputs):
            ids, lines_tok = [], []
            for line in doc:
                toks = []
                for w in ref.basic_tokenize(line, True):
                    toks.extend(ref.wordpiece(w, vocab))
                lines_tok.append((line, toks))
                ids.extend(vocab[t] for t in toks)
            if not ids:
                continue  # empty documents are skipped by preprocess
            if k >= len(stored):
                err("more source documents than stored documents")
                break
            s_tok, s_ws = stored[k]
            k += 1
            if k % 7 != 1:  # check every 7th document in full
                continue
            result["docs_checked"] += 1
            if list(s_tok) == ids:
                result["ids_equal"] += 1
            decoded = "".join(inv[int(i)][2:] if inv[int(i)].startswith("##") else inv[int(i)] for i in s_tok)
            if 100 not in ids:
                normal = "".join("".join(ref.basic_tokenize(line, True)) for line in doc)
                if decoded == normal:
                    result["text_equal"] += 1
                else:
                    err("document %d does not decode to its text" % (k - 1))
            else:
                result["text_equal"] += 1
            # word_start vs jieba on lines whose every token is one character of the line, in order
            pos = 0
            for line, toks in lines_tok:
                n = len(toks)
                if n and all(len(t) == 1 for t in toks) and "".join(toks) == line:
                    result["word_start_lines"] += 1
                    starts = set()
                    off = 0
                    for w in tk.cut(line, HMM=False):
                        starts.add(off)
                        off += len(w)
                    expect = [1 if i in starts else 0 for i in range(n)]
                    if list(s_ws[pos:pos + n]) == expect:
                        result["word_start_equal"] += 1
                pos += n
        if k != len(stored):
            err("stored %d documents, source has %d non-empty" % (len(stored), k))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
