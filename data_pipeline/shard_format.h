// The corpus shard format (DESIGN §4): one HDF5 file per shard, documents never split across files.
//
//   tokens            int32  [T]     WordPiece ids, all documents concatenated
//   word_start        uint8  [T]     1 where a segmenter word begins
//   sentence_offsets  int64  [S+1]   token offset of each sentence
//   doc_offsets       int64  [D+1]   sentence offset of each document
//   spans             int32  [K,3]   knowledge spans: token begin, token end (exclusive), kind (1 entity, 2 event)
//   doc_span_offsets  int64  [D+1]   (extension) span offset of each document, for per-document reads
//
// Attributes: format = "erlangshen-corpus", version, vocab_sha256, vocab_size, lowercase, segmenter,
// lexicon_sha256, source (input file names, one per line).
#pragma once

namespace erlangshen::data::shard {

constexpr const char* kFormat = "erlangshen-corpus";
constexpr int kVersion = 1;

constexpr const char* kTokens = "tokens";
constexpr const char* kWordStart = "word_start";
constexpr const char* kSentenceOffsets = "sentence_offsets";
constexpr const char* kDocOffsets = "doc_offsets";
constexpr const char* kSpans = "spans";
constexpr const char* kDocSpanOffsets = "doc_span_offsets";

}  // namespace erlangshen::data::shard
