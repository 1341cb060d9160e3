// Classification metrics (model/metrics.h) against hand-worked confusion matrices.
#include <gtest/gtest.h>

#include <cmath>

#include "model/metrics.h"
#include "runtime/check.h"

namespace erlangshen {
namespace {

TEST(Metrics, HandWorkedThreeClasses) {
  // gold 0 0 0 1 1 2 2 2 2, pred 0 1 0 1 1 1 1 2 0 -> confusion (rows gold, columns predicted)
  //   [2 1 0]
  //   [0 2 0]
  //   [1 2 1]
  // class 0: TP 2, predicted 3, support 3 -> P 2/3, R 2/3, F1 2/3
  // class 1: TP 2, predicted 5, support 2 -> P 2/5, R 1, F1 2*0.4/1.4 = 4/7
  // class 2: TP 1, predicted 1, support 4 -> P 1, R 1/4, F1 0.5/1.25 = 2/5
  // accuracy 5/9, macro-F1 (2/3 + 4/7 + 2/5) / 3
  const ClassificationMetrics m = compute_metrics({0, 0, 0, 1, 1, 2, 2, 2, 2}, {0, 1, 0, 1, 1, 1, 1, 2, 0}, 3);
  const std::vector<int64_t> conf = {2, 1, 0, 0, 2, 0, 1, 2, 1};
  EXPECT_EQ(m.confusion, conf);
  EXPECT_EQ(m.count, 9);
  EXPECT_NEAR(m.accuracy, 5.0 / 9, 1e-15);
  EXPECT_NEAR(m.per_class[0].precision, 2.0 / 3, 1e-15);
  EXPECT_NEAR(m.per_class[0].recall, 2.0 / 3, 1e-15);
  EXPECT_NEAR(m.per_class[1].precision, 0.4, 1e-15);
  EXPECT_NEAR(m.per_class[1].recall, 1.0, 1e-15);
  EXPECT_NEAR(m.per_class[1].f1, 4.0 / 7, 1e-15);
  EXPECT_NEAR(m.per_class[2].precision, 1.0, 1e-15);
  EXPECT_NEAR(m.per_class[2].recall, 0.25, 1e-15);
  EXPECT_NEAR(m.per_class[2].f1, 0.4, 1e-15);
  EXPECT_EQ(m.per_class[1].predicted, 5);
  EXPECT_EQ(m.per_class[2].support, 4);
  EXPECT_NEAR(m.macro_f1, (2.0 / 3 + 4.0 / 7 + 0.4) / 3, 1e-15);
}

TEST(Metrics, NeverPredictedClassScoresZeroNotNaN) {
  // gold 0 1 2 2, pred 0 1 1 0: class 2 is never predicted -> P = 0 (0/0 defined as 0), R = 0, F1 = 0.
  // class 0: TP 1, predicted 2, support 1 -> F1 2/3; class 1 likewise 2/3. macro = (2/3 + 2/3 + 0) / 3.
  const ClassificationMetrics m = compute_metrics({0, 1, 2, 2}, {0, 1, 1, 0}, 3);
  EXPECT_EQ(m.per_class[2].predicted, 0);
  EXPECT_EQ(m.per_class[2].precision, 0.0);
  EXPECT_EQ(m.per_class[2].recall, 0.0);
  EXPECT_EQ(m.per_class[2].f1, 0.0);
  EXPECT_NEAR(m.macro_f1, 4.0 / 9, 1e-15);
  EXPECT_NEAR(m.accuracy, 0.5, 1e-15);
  for (const auto& s : m.per_class) EXPECT_FALSE(std::isnan(s.f1) || std::isnan(s.precision) || std::isnan(s.recall));
}

TEST(Metrics, MajorityBaselineOnQbqtcTestPublic) {
  // Predicting "1" for all 5,000 test_public pairs (1,209 / 3,159 / 632): F1_1 = 2 * 0.6318 / 1.6318, others 0.
  std::vector<int32_t> gold, pred(5000, 1);
  gold.insert(gold.end(), 1209, 0);
  gold.insert(gold.end(), 3159, 1);
  gold.insert(gold.end(), 632, 2);
  const ClassificationMetrics m = compute_metrics(gold, pred, 3);
  const double p1 = 3159.0 / 5000;
  EXPECT_NEAR(m.macro_f1, 2 * p1 / (1 + p1) / 3, 1e-12);  // 0.2582
  EXPECT_NEAR(m.accuracy, p1, 1e-12);
}

TEST(Metrics, ClassAbsentFromGoldAndPredictionsIsLeftOutOfMacroF1) {
  // As sklearn's f1_score(average="macro") with its default labels (the union of gold and predicted classes).
  // gold 0 1 1, pred 0 1 0: class 0 F1 2/3, class 1 F1 2/3, class 2 absent -> macro 2/3.
  const ClassificationMetrics m = compute_metrics({0, 1, 1}, {0, 1, 0}, 3);
  EXPECT_NEAR(m.macro_f1, 2.0 / 3, 1e-15);
  EXPECT_EQ(m.per_class[2].f1, 0.0);
}

TEST(Metrics, EmptyAndJson) {
  const ClassificationMetrics e = ConfusionMatrix(3).metrics();
  EXPECT_EQ(e.accuracy, 0.0);
  EXPECT_EQ(e.macro_f1, 0.0);
  const ClassificationMetrics m = compute_metrics({0, 1, 2}, {0, 2, 2}, 3);
  const nlohmann::json j = m.to_json({"poor", "some", "high"});
  EXPECT_EQ(j["per_class"][2]["label"], "high");
  EXPECT_EQ(j["confusion"][1][2], 1);
  EXPECT_NEAR(j["accuracy"].get<double>(), 2.0 / 3, 1e-15);
  EXPECT_NE(m.format_table().find("macro-F1"), std::string::npos);
  EXPECT_THROW(compute_metrics({0, 3}, {0, 1}, 3), Error);
}

}  // namespace
}  // namespace erlangshen
