// BERT tokenizer vs. the Python reference in tests/reference/bert_tokenizer_ref.py (written from Google's
// published tokenization.py algorithm), on hand-picked cases and on real corpus lines.
#include <gtest/gtest.h>

#include "data_pipeline/tokenizer.h"
#include "data_pipeline/utf8.h"
#include "runtime/check.h"
#include "tests/data_pipeline/test_util.h"

namespace erlangshen::data {
namespace {

using namespace testing;

std::vector<std::string> hand_cases() {
  std::string long_word(120, 'a');
  return {
      "北京欢迎你，我们都是中国人。",
      "ＡＢＣ１２３，全角字符！（测试）",
      "unaffable running jumped over the lazy dogs",
      "Café naïve résumé Ångström façade",
      std::string("a") + '\x01' + "b\x7f" + "c\u200bd\ufeffe",
      "emoji 😀 🤖 hello🙂 world",
      "北\u2028京\u2029上海",
      long_word + " short",
      "ΣΑΣ ὈΔΥΣΣΕΎΣ σοφός",
      "iPhone 12 Pro Max售价9999元，性价比高！",
      "a\tb\nc\r\nd\u3000e\u00a0f",
      "İstanbul ǅemal ﬁne",
      "こんにちは 안녕하세요 ไทย",
      "don't U.S.A. 3.14 e-mail #hashtag @user 50%",
      "[CLS] x [SEP] [MASK]",
      "“引号”‘单引’《书名》【方括号】……——",
      "𠀀𠀁 CJK Extension B 𪜀",
      "",
      "   ",
  };
}

void compare_with_reference(const BertTokenizer& tok, const std::vector<std::string>& texts, bool lower,
                            const std::string& vocab, double min_agreement) {
  TempDir tmp("tokref");
  write_json_lines(tmp.file("in.jsonl"), texts);
  int rc = run_python("bert_tokenizer_ref.py", vocab + (lower ? " lower" : " cased"), tmp.file("in.jsonl"),
                      tmp.file("out.jsonl"));
  ASSERT_EQ(rc, 0) << "reference tokenizer failed";
  auto lines = read_lines(tmp.file("out.jsonl"));
  ASSERT_EQ(lines.size(), texts.size());
  size_t same = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ref = nlohmann::json::parse(lines[i]);
    std::vector<int32_t> ids = tok.encode(texts[i]);
    std::vector<int32_t> ref_ids = ref["ids"].get<std::vector<int32_t>>();
    if (ids == ref_ids) {
      ++same;
    } else if (min_agreement >= 1.0) {
      ADD_FAILURE() << "text: " << texts[i] << "\nreference: " << ref["tokens"].dump() << "\nours: "
                    << nlohmann::json(tok.tokenize(texts[i])).dump();
    }
  }
  EXPECT_GE(static_cast<double>(same), min_agreement * static_cast<double>(texts.size()))
      << same << " of " << texts.size() << " identical";
}

TEST(Tokenizer, HandCasesMatchReferenceLowercase) {
  ERL_REQUIRE_SHARED();
  std::string vocab = shared_path("data/vocab/vocab.txt");
  compare_with_reference(BertTokenizer::from_file(vocab, true), hand_cases(), true, vocab, 1.0);
}

TEST(Tokenizer, HandCasesMatchReferenceCased) {
  ERL_REQUIRE_SHARED();
  std::string vocab = shared_path("data/vocab/vocab.txt");
  compare_with_reference(BertTokenizer::from_file(vocab, false), hand_cases(), false, vocab, 1.0);
}

TEST(Tokenizer, CorpusLinesMatchReference) {
  ERL_REQUIRE_SHARED();
  std::string vocab = shared_path("data/vocab/vocab.txt");
  std::vector<std::string> texts;
  for (const char* f : {"zhwiki_sample.txt", "fewclue_iflytek_texts.txt", "fewclue_csldcp_texts.txt",
                        "classics_xiyouji.txt"}) {
    auto lines = corpus_lines(shared_path(std::string("data/corpus/") + f), 150, 7);
    texts.insert(texts.end(), lines.begin(), lines.end());
  }
  compare_with_reference(BertTokenizer::from_file(vocab, true), texts, true, vocab, 1.0);
}

TEST(Tokenizer, VocabKeepsLineSeparatorEntries) {
  ERL_REQUIRE_SHARED();
  Vocab v = Vocab::load(shared_path("data/vocab/vocab.txt"));
  EXPECT_EQ(v.size(), 21128);
  EXPECT_EQ(v.token(343), "\u2028");    // line 344
  EXPECT_EQ(v.token(13502), "##\u2028");  // line 13,503
  EXPECT_EQ(v.pad_id(), 0);
  EXPECT_EQ(v.unk_id(), 100);
  EXPECT_EQ(v.cls_id(), 101);
  EXPECT_EQ(v.sep_id(), 102);
  EXPECT_EQ(v.mask_id(), 103);
}

TEST(Tokenizer, OffsetsPointAtSourceCharacters) {
  auto vocab = std::make_shared<const Vocab>(
      Vocab::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ab", "##c", "北", ",", "x"}));
  BertTokenizer tok(vocab, true);
  std::u32string text;
  decode_utf8("ABC,北 x", text);
  Encoding e;
  tok.encode(text, e);
  EXPECT_EQ(e.ids, (std::vector<int32_t>{5, 6, 8, 7, 9}));
  EXPECT_EQ(e.starts, (std::vector<uint32_t>{0, 0, 3, 4, 6}));
  EXPECT_EQ(e.first_piece, (std::vector<uint8_t>{1, 0, 1, 1, 1}));
}

TEST(Tokenizer, PairEncoding) {
  auto vocab = std::make_shared<const Vocab>(
      Vocab::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "北", "京", "上", "海", "人"}));
  BertTokenizer tok(vocab, true);
  PairEncoding p = tok.encode_pair("北京人", "上海", 7);
  EXPECT_EQ(p.ids, (std::vector<int32_t>{2, 5, 6, 3, 7, 8, 3}));
  EXPECT_EQ(p.token_types, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1}));
}

TEST(Tokenizer, MissingOrEmptyVocabIsAClearError) {
  TempDir tmp("vocab");
  try {
    Vocab::load(tmp.file("nope.txt"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.txt"), std::string::npos);
  }
  write_file(tmp.file("empty.txt"), "");
  EXPECT_THROW(Vocab::load(tmp.file("empty.txt")), Error);
  write_file(tmp.file("nomask.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n");
  try {
    Vocab::load(tmp.file("nomask.txt"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[MASK]"), std::string::npos);
  }
}

}  // namespace
}  // namespace erlangshen::data
