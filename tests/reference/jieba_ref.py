#!/usr/bin/env python3
"""Runs Debian's python3-jieba (HMM=False) with a given dictionary over JSON-string lines.

Usage: jieba_ref.py DICT [USERDICT] < texts.jsonl > words.jsonl  (one JSON list of words per line)
Exit code 77 when jieba is not installed (the caller skips).
"""
import json
import logging
import os
import sys
import tempfile

try:
    import jieba
except ImportError:
    sys.exit(77)


def main():
    jieba.setLogLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="jieba_ref_") as tmp:
        tk = jieba.Tokenizer(dictionary=os.path.abspath(sys.argv[1]))
        tk.tmp_dir = tmp  # jieba's model cache goes here, not into a shared /tmp file
        tk.initialize()
        if len(sys.argv) > 2:
            tk.load_userdict(sys.argv[2])
        for line in sys.stdin:
            text = json.loads(line)
            print(json.dumps(list(tk.cut(text, HMM=False)), ensure_ascii=False))


if __name__ == "__main__":
    main()
