// jieba-compatible segmentation: parity with Debian's python3-jieba (HMM=False, same dictionary) on corpus
// lines, user dictionaries, and malformed dictionaries.
#include <gtest/gtest.h>

#include "data_pipeline/segmenter.h"
#include "runtime/check.h"
#include "tests/data_pipeline/test_util.h"

namespace erlangshen::data {
namespace {

using namespace testing;

// Lines from every corpus file (strided so each file contributes from its whole length).
std::vector<std::string> parity_lines() {
  std::vector<std::string> texts;
  const std::pair<const char*, size_t> files[] = {
      {"zhwiki_sample.txt", 700},        {"classics_xiyouji.txt", 400},      {"classics_sanguo_yanyi.txt", 300},
      {"classics_shuihu_zhuan.txt", 300}, {"fewclue_iflytek_texts.txt", 500}, {"fewclue_csldcp_texts.txt", 400},
      {"fewclue_csl_texts.txt", 200}};
  for (auto [f, n] : files) {
    auto lines = corpus_lines(shared_path(std::string("data/corpus/") + f), n, 3);
    texts.insert(texts.end(), lines.begin(), lines.end());
  }
  texts.push_back("混合 text：C++ 与 Python3.11、e-mail 地址 a_b%c&d#e，全角ＡＢＣ\r\n结束");
  texts.push_back("  多个   空格\t制表符\u3000全角空格 ");
  return texts;
}

void check_parity(const Segmenter& seg, const std::vector<std::string>& texts, const std::string& args,
                  double min_share) {
  TempDir tmp("jieba");
  write_json_lines(tmp.file("in.jsonl"), texts);
  int rc = run_python("jieba_ref.py", args, tmp.file("in.jsonl"), tmp.file("out.jsonl"));
  if (rc == 77) GTEST_SKIP() << "python3-jieba is not installed";
  ASSERT_EQ(rc, 0);
  auto lines = read_lines(tmp.file("out.jsonl"));
  ASSERT_EQ(lines.size(), texts.size());
  size_t same = 0, shown = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ref = nlohmann::json::parse(lines[i]).get<std::vector<std::string>>();
    auto ours = seg.cut_utf8(texts[i]);
    if (ref == ours) {
      ++same;
    } else if (shown++ < 5) {
      std::cout << "difference on line " << i << ":\n  jieba: " << nlohmann::json(ref).dump()
                << "\n  ours:  " << nlohmann::json(ours).dump() << "\n";
    }
  }
  std::cout << "segmenter parity: " << same << " / " << texts.size() << " lines identical\n";
  EXPECT_GE(static_cast<double>(same), min_share * static_cast<double>(texts.size()));
}

TEST(Segmenter, MatchesJiebaNoHmmOnCorpus) {
  ERL_REQUIRE_SHARED();
  std::string dict = shared_path("data/lexicon/jieba_dict.txt");
  Segmenter seg = Segmenter::load(dict);
  auto texts = parity_lines();
  ASSERT_GE(texts.size(), 2000u);
  check_parity(seg, texts, dict, 0.999);
}

TEST(Segmenter, UserDictionaryMatchesJieba) {
  ERL_REQUIRE_SHARED();
  TempDir tmp("userdict");
  std::string dict = shared_path("data/lexicon/jieba_dict.txt");
  write_file(tmp.file("user.txt"), "\xEF\xBB\xBF二郎神模型 10 nz\n大规模预训练\n知识掩码 5\n封神榜 n\n");
  Segmenter seg = Segmenter::load(dict);
  seg.load_user_dict(tmp.file("user.txt"));
  std::vector<std::string> texts = {"二郎神模型是封神榜团队的大规模预训练模型，使用知识掩码。",
                                    "大规模预训练和知识掩码", "封神榜上有名"};
  check_parity(seg, texts, dict + " " + tmp.file("user.txt"), 1.0);
}

TEST(Segmenter, SmallDictionaryRoutes) {
  TempDir tmp("smalldict");
  write_file(tmp.file("dict.txt"), "北京 100 ns\n大学 80 n\n北京大学 50 nt\n学生 60 n\n的 500 uj\nab 3 x\n");
  Segmenter seg = Segmenter::load(tmp.file("dict.txt"));
  EXPECT_EQ(seg.total(), 793);
  EXPECT_EQ(seg.cut_utf8("北京大学的学生"), (std::vector<std::string>{"北京大学", "的", "学生"}));
  // Single ASCII letters/digits merge; a dictionary word "ab" is kept apart from the merged run.
  EXPECT_EQ(seg.cut_utf8("xyz12 abc"), (std::vector<std::string>{"xyz12", " ", "ab", "c"}));
  EXPECT_EQ(seg.cut_utf8("你好！\r\n"), (std::vector<std::string>{"你", "好", "！", "\r\n"}));
}

TEST(Segmenter, MalformedDictionaryNamesFileAndLine) {
  TempDir tmp("baddict");
  write_file(tmp.file("dict.txt"), "北京 100 ns\n大学 eighty n\n");
  try {
    Segmenter::load(tmp.file("dict.txt"));
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("dict.txt"), std::string::npos) << m;
    EXPECT_NE(m.find("line 2"), std::string::npos) << m;
  }
  write_file(tmp.file("empty.txt"), "");
  EXPECT_THROW(Segmenter::load(tmp.file("empty.txt")), Error);
  EXPECT_THROW(Segmenter::load(tmp.file("missing.txt")), Error);
}

}  // namespace
}  // namespace erlangshen::data
