#include "data_pipeline/text_pipeline.h"

#include "runtime/check.h"

namespace erlangshen::data {

namespace {
BertTokenizer load_tokenizer(const TextPipelineOptions& o) {
  if (o.vocab.empty()) throw Error("no vocabulary given (--vocab or data.vocab)");
  return BertTokenizer::from_file(o.vocab, o.lowercase);
}
Segmenter load_segmenter(const TextPipelineOptions& o) {
  if (o.dict.empty()) throw Error("no jieba dictionary given (--dict or data.dict)");
  Segmenter s = Segmenter::load(o.dict);
  for (const auto& u : o.user_dicts) s.load_user_dict(u);
  return s;
}
}  // namespace

TextPipeline::TextPipeline(const TextPipelineOptions& o) : tokenizer_(load_tokenizer(o)), segmenter_(load_segmenter(o)) {
  if (o.pos_lexicon) lexicon_.add_dict_pos(o.dict);
  for (const auto& l : o.lexicons) lexicon_.add_spec(l);
}

std::string TextPipeline::segmenter_id() const { return "jieba-dag-nohmm dict_sha256=" + segmenter_.sha256(); }

}  // namespace erlangshen::data
