#include "model/metrics.h"

#include <cstdio>
#include <sstream>

#include "runtime/check.h"

namespace erlangshen {

ConfusionMatrix::ConfusionMatrix(int num_classes) : K_(num_classes), counts_(static_cast<size_t>(num_classes) * num_classes, 0) {
  ERL_CHECK(num_classes >= 1, "confusion matrix needs at least one class");
}

void ConfusionMatrix::add(int gold, int pred) {
  ERL_CHECK(gold >= 0 && gold < K_, "gold class " << gold << " outside [0, " << K_ << ")");
  ERL_CHECK(pred >= 0 && pred < K_, "predicted class " << pred << " outside [0, " << K_ << ")");
  ++counts_[static_cast<size_t>(gold) * K_ + pred];
}

void ConfusionMatrix::add(const ConfusionMatrix& other) {
  ERL_CHECK(other.K_ == K_, "adding confusion matrices of " << other.K_ << " and " << K_ << " classes");
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

ClassificationMetrics ConfusionMatrix::metrics() const {
  ClassificationMetrics m;
  m.num_classes = K_;
  m.confusion = counts_;
  m.per_class.resize(K_);
  int64_t correct = 0;
  for (int g = 0; g < K_; ++g)
    for (int p = 0; p < K_; ++p) {
      const int64_t n = counts_[static_cast<size_t>(g) * K_ + p];
      m.count += n;
      m.per_class[g].support += n;
      m.per_class[p].predicted += n;
      if (g == p) correct += n;
    }
  m.accuracy = m.count > 0 ? static_cast<double>(correct) / m.count : 0.0;
  double f1_sum = 0.0;
  int present = 0;
  for (int k = 0; k < K_; ++k) {
    ClassScores& s = m.per_class[k];
    const double tp = static_cast<double>(counts_[static_cast<size_t>(k) * K_ + k]);
    s.precision = s.predicted > 0 ? tp / s.predicted : 0.0;
    s.recall = s.support > 0 ? tp / s.support : 0.0;
    s.f1 = s.precision + s.recall > 0 ? 2.0 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
    if (s.support > 0 || s.predicted > 0) {
      f1_sum += s.f1;
      ++present;
    }
  }
  m.macro_f1 = present > 0 ? f1_sum / present : 0.0;
  return m;
}

ClassificationMetrics compute_metrics(const std::vector<int32_t>& gold, const std::vector<int32_t>& pred,
                                      int num_classes) {
  ERL_CHECK(gold.size() == pred.size(), gold.size() << " gold labels but " << pred.size() << " predictions");
  ConfusionMatrix cm(num_classes);
  for (size_t i = 0; i < gold.size(); ++i) cm.add(gold[i], pred[i]);
  return cm.metrics();
}

namespace {
std::string label_name(const std::vector<std::string>& names, int k) {
  return k < static_cast<int>(names.size()) ? names[k] : std::to_string(k);
}
}  // namespace

nlohmann::json ClassificationMetrics::to_json(const std::vector<std::string>& label_names) const {
  nlohmann::json per = nlohmann::json::array();
  for (int k = 0; k < num_classes; ++k) {
    const ClassScores& s = per_class[k];
    per.push_back({{"label", label_name(label_names, k)},
                   {"precision", s.precision},
                   {"recall", s.recall},
                   {"f1", s.f1},
                   {"support", s.support},
                   {"predicted", s.predicted}});
  }
  nlohmann::json conf = nlohmann::json::array();
  for (int g = 0; g < num_classes; ++g) {
    nlohmann::json row = nlohmann::json::array();
    for (int p = 0; p < num_classes; ++p) row.push_back(at(g, p));
    conf.push_back(row);
  }
  return {{"count", count}, {"accuracy", accuracy}, {"macro_f1", macro_f1}, {"per_class", per}, {"confusion", conf}};
}

std::string ClassificationMetrics::format_table(const std::vector<std::string>& label_names) const {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "examples %lld | accuracy %.4f | macro-F1 %.4f\n", (long long)count, accuracy,
                macro_f1);
  os << line;
  std::snprintf(line, sizeof line, "%-10s %9s %9s %9s %9s %9s\n", "class", "precision", "recall", "f1", "support",
                "predicted");
  os << line;
  for (int k = 0; k < num_classes; ++k) {
    const ClassScores& s = per_class[k];
    std::snprintf(line, sizeof line, "%-10s %9.4f %9.4f %9.4f %9lld %9lld\n", label_name(label_names, k).c_str(),
                  s.precision, s.recall, s.f1, (long long)s.support, (long long)s.predicted);
    os << line;
  }
  os << "confusion (rows gold, columns predicted):\n";
  std::snprintf(line, sizeof line, "%-10s", "");
  os << line;
  for (int p = 0; p < num_classes; ++p) {
    std::snprintf(line, sizeof line, " %8s", label_name(label_names, p).c_str());
    os << line;
  }
  os << "\n";
  for (int g = 0; g < num_classes; ++g) {
    std::snprintf(line, sizeof line, "%-10s", label_name(label_names, g).c_str());
    os << line;
    for (int p = 0; p < num_classes; ++p) {
      std::snprintf(line, sizeof line, " %8lld", (long long)at(g, p));
      os << line;
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace erlangshen
