// The line-based input files (vocabulary, jieba dictionary, lexicons): what a line is, and errors that name the
// file and line of bad input.
#include <gtest/gtest.h>

#include "data_pipeline/lexicon.h"
#include "data_pipeline/text_file.h"
#include "data_pipeline/vocab.h"
#include "runtime/check.h"
#include "tests/data_pipeline/test_util.h"

namespace erlangshen::data {
namespace {

using namespace testing;

// The message of the Error that f throws ("" when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TextFiles, ForEachLineSplitsOnNewlinesOnly) {
  std::vector<std::pair<size_t, std::string>> got;
  for_each_line("a\r\n\nb c\nlast", [&](size_t n, std::string_view line) { got.emplace_back(n, line); });
  const std::vector<std::pair<size_t, std::string>> want{{1, "a\r"}, {2, ""}, {3, "b c"}, {4, "last"}};
  EXPECT_EQ(got, want);
  got.clear();
  for_each_line("x\n", [&](size_t n, std::string_view line) { got.emplace_back(n, line); });
  EXPECT_EQ(got, (std::vector<std::pair<size_t, std::string>>{{1, "x"}}));  // no empty line after the last '\n'
}

TEST(TextFiles, VocabularyNamesTheLineThatIsNotUtf8) {
  TempDir tmp("vocab_utf8");
  write_file(tmp.file("vocab.txt"), "[PAD]\n[UNK]\n\xff\xfe\n[CLS]\n[SEP]\n[MASK]\n");
  const std::string m = error_of([&] { Vocab::load(tmp.file("vocab.txt")); });
  EXPECT_NE(m.find("vocab.txt line 3 is not valid UTF-8"), std::string::npos) << m;
}

TEST(TextFiles, LexiconSkipsBomTabsCommentsAndBlankLines) {
  TempDir tmp("lexicon");
  write_file(tmp.file("terms.txt"), "\xEF\xBB\xBF北京\t123\n# 注释\n\n  长江 \r\n");
  LexiconMatcher lex;
  lex.add_file(tmp.file("terms.txt"), SpanKind::Entity);
  EXPECT_EQ(lex.num_terms(), 2u);
  std::vector<CharSpan> spans;
  lex.match(U"北京长江", {2, 4}, spans);  // two words: 北京 | 长江
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].begin, 0u);
  EXPECT_EQ(spans[1].begin, 2u);
}

TEST(TextFiles, LexiconErrorsNameFileAndLine) {
  TempDir tmp("lexicon_bad");
  write_file(tmp.file("bad.txt"), "北京\n# ok\n长江\n\xc3\n");
  std::string m = error_of([&] { LexiconMatcher().add_file(tmp.file("bad.txt"), SpanKind::Entity); });
  EXPECT_NE(m.find("bad.txt line 4 is not valid UTF-8"), std::string::npos) << m;
  write_file(tmp.file("comments.txt"), "# only\n\n# comments\n");
  m = error_of([&] { LexiconMatcher().add_file(tmp.file("comments.txt"), SpanKind::Event); });
  EXPECT_NE(m.find("comments.txt has no terms"), std::string::npos) << m;
}

}  // namespace
}  // namespace erlangshen::data
