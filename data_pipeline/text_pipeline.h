// The loaded text resources of preprocess / tokenize: vocabulary + tokenizer, segmenter (main dictionary and
// user dictionaries) and knowledge lexicons (files and dictionary POS tags).
#pragma once
#include <string>
#include <vector>

#include "data_pipeline/lexicon.h"
#include "data_pipeline/segmenter.h"
#include "data_pipeline/text_processor.h"
#include "data_pipeline/tokenizer.h"

namespace erlangshen::data {

struct TextPipelineOptions {
  std::string vocab;                    // vocab.txt
  std::string dict;                     // jieba dict.txt
  std::vector<std::string> user_dicts;  // jieba user dictionaries
  std::vector<std::string> lexicons;    // "FILE" | "entity:FILE" | "event:FILE"
  bool pos_lexicon = true;              // dictionary POS tags as knowledge terms (nr/ns/nt/nz, v/vn)
  bool lowercase = true;
};

class TextPipeline {
 public:
  // Throws Error naming the file that is missing, empty or malformed.
  explicit TextPipeline(const TextPipelineOptions& options);
  const BertTokenizer& tokenizer() const { return tokenizer_; }
  const Segmenter& segmenter() const { return segmenter_; }
  const LexiconMatcher& lexicon() const { return lexicon_; }
  TextProcessor processor() const { return TextProcessor(tokenizer_, segmenter_, lexicon_); }
  // "jieba-dag-nohmm dict_sha256=..." (the shard attribute `segmenter`).
  std::string segmenter_id() const;

 private:
  BertTokenizer tokenizer_;
  Segmenter segmenter_;
  LexiconMatcher lexicon_;
};

}  // namespace erlangshen::data
