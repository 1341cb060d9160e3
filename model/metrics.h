// Classification metrics from a confusion matrix (DESIGN §4): accuracy, macro-F1 as CLUE scores QBQTC
// (sklearn.metrics.f1_score(y_true, y_pred, average="macro"), as in CLUEbenchmark/QBQTC baselines), per-class
// precision / recall / F1, and the matrix itself.
//
//   confusion[g][p] = number of examples with gold class g predicted as p
//   precision_k = TP_k / (TP_k + FP_k) = C[k][k] / sum_g C[g][k]    (0 when class k is never predicted)
//   recall_k    = TP_k / (TP_k + FN_k) = C[k][k] / sum_p C[k][p]    (0 when class k never occurs)
//   F1_k        = 2 P R / (P + R)                                   (0 when P + R = 0)
//   macro-F1    = mean of F1_k over the classes that occur in the gold labels or the predictions
//                 (sklearn's default label set; with every class present this is the mean over all K)
// No value is ever NaN: the undefined ratios are 0, as with sklearn's zero_division=0 (its default "warn"
// also returns 0).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace erlangshen {

struct ClassScores {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;    // gold examples of this class
  int64_t predicted = 0;  // examples predicted as this class
};

struct ClassificationMetrics {
  int num_classes = 0;
  int64_t count = 0;
  double accuracy = 0;
  double macro_f1 = 0;
  std::vector<ClassScores> per_class;  // (K)
  std::vector<int64_t> confusion;      // (K, K) row = gold, column = predicted

  int64_t at(int gold, int pred) const { return confusion[static_cast<size_t>(gold) * num_classes + pred]; }
  // {"count", "accuracy", "macro_f1", "per_class": [{"label", "precision", "recall", "f1", "support",
  //  "predicted"}...], "confusion": [[...]...]}; `label_names` (K) name the classes (default "0".."K-1").
  nlohmann::json to_json(const std::vector<std::string>& label_names = {}) const;
  // Human-readable table: overall scores, per-class rows, the confusion matrix.
  std::string format_table(const std::vector<std::string>& label_names = {}) const;
};

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int num_classes);
  void add(int gold, int pred);
  void add(const ConfusionMatrix& other);
  ClassificationMetrics metrics() const;
  int num_classes() const { return K_; }
  const std::vector<int64_t>& counts() const { return counts_; }

 private:
  int K_;
  std::vector<int64_t> counts_;  // (K, K)
};

ClassificationMetrics compute_metrics(const std::vector<int32_t>& gold, const std::vector<int32_t>& pred,
                                      int num_classes);

}  // namespace erlangshen
