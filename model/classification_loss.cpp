#include "model/classification_loss.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "runtime/check.h"

namespace erlangshen {

namespace {

// p = softmax(z) (K), returns lse = log sum_k exp(z_k), computed stably.
double softmax(const double* z, int K, double* p) {
  double m = z[0];
  for (int k = 1; k < K; ++k) m = std::max(m, z[k]);
  double s = 0.0;
  for (int k = 0; k < K; ++k) s += (p[k] = std::exp(z[k] - m));
  for (int k = 0; k < K; ++k) p[k] /= s;
  return m + std::log(s);
}

void check_label(int32_t y, int K, int i) {
  ERL_CHECK(y >= 0 && y < K, "label " << y << " of sample " << i << " is outside [0, " << K << ")");
}

// Index of the largest logit; the first one on ties (torch.argmax / numpy.argmax).
int argmax(const double* z, int K) {
  int best = 0;
  for (int k = 1; k < K; ++k)
    if (z[k] > z[best]) best = k;
  return best;
}

}  // namespace

LossType parse_loss_type(const std::string& name) {
  if (name == "ce") return LossType::CrossEntropy;
  if (name == "label_smoothing") return LossType::LabelSmoothing;
  if (name == "pcl") return LossType::Pcl;
  if (name == "pcl_reference") return LossType::PclReference;
  throw Error("loss.type: '" + name + "' is not one of: ce, label_smoothing, pcl, pcl_reference");
}

const char* loss_type_name(LossType t) {
  switch (t) {
    case LossType::CrossEntropy: return "ce";
    case LossType::LabelSmoothing: return "label_smoothing";
    case LossType::Pcl: return "pcl";
    case LossType::PclReference: return "pcl_reference";
  }
  return "?";
}

// L = -log p_y = lse - z_y;  dL/dz_j = p_j - [j == y].
double ce_loss(const double* logits, const int32_t* labels, int B, int K, double* dlogits) {
  std::vector<double> p(K);
  double total = 0.0;
  for (int i = 0; i < B; ++i) {
    const double* z = logits + static_cast<size_t>(i) * K;
    const int y = labels[i];
    check_label(y, K, i);
    const double lse = softmax(z, K, p.data());
    total += lse - z[y];
    if (dlogits) {
      double* dz = dlogits + static_cast<size_t>(i) * K;
      for (int j = 0; j < K; ++j) dz[j] = (p[j] - (j == y ? 1.0 : 0.0)) / B;
    }
  }
  return total / B;
}

// L = (1-eps)(lse - z_y) + (eps/K) sum_k (lse - z_k);  dL/dz_j = p_j - q_j,  q_j = (1-eps)[j == y] + eps/K.
double label_smoothing_loss(const double* logits, const int32_t* labels, int B, int K, double eps, double* dlogits) {
  std::vector<double> p(K);
  double total = 0.0;
  for (int i = 0; i < B; ++i) {
    const double* z = logits + static_cast<size_t>(i) * K;
    const int y = labels[i];
    check_label(y, K, i);
    const double lse = softmax(z, K, p.data());
    double sum_nll = 0.0;
    for (int k = 0; k < K; ++k) sum_nll += lse - z[k];
    total += (1.0 - eps) * (lse - z[y]) + eps / K * sum_nll;
    if (dlogits) {
      double* dz = dlogits + static_cast<size_t>(i) * K;
      for (int j = 0; j < K; ++j) dz[j] = (p[j] - ((j == y ? 1.0 - eps : 0.0) + eps / K)) / B;
    }
  }
  return total / B;
}

// L = w_y LS_eps + sum_k p_k c_k,  c_k = lam_plus (k-y) [k>y] + lam_minus (y-k) [k<y];
// dL/dz_j = w_y (p_j - q_j) + p_j (c_j - sum_k p_k c_k).
double pcl_loss(const double* logits, const int32_t* labels, int B, int K, const PclParams& params, double* dlogits) {
  ERL_CHECK(params.weights.empty() || static_cast<int>(params.weights.size()) == K,
            "pcl: " << params.weights.size() << " propensity weights for " << K << " classes");
  const double eps = params.eps;
  std::vector<double> p(K), c(K);
  double total = 0.0;
  for (int i = 0; i < B; ++i) {
    const double* z = logits + static_cast<size_t>(i) * K;
    const int y = labels[i];
    check_label(y, K, i);
    const double w = params.weights.empty() ? 1.0 : params.weights[y];
    const double lse = softmax(z, K, p.data());
    double sum_nll = 0.0;
    for (int k = 0; k < K; ++k) sum_nll += lse - z[k];
    const double smoothed = (1.0 - eps) * (lse - z[y]) + eps / K * sum_nll;
    double penalty = 0.0;  // sum_k p_k c_k
    for (int k = 0; k < K; ++k) {
      c[k] = k > y ? params.lam_plus * (k - y) : k < y ? params.lam_minus * (y - k) : 0.0;
      penalty += p[k] * c[k];
    }
    total += w * smoothed + penalty;
    if (dlogits) {
      double* dz = dlogits + static_cast<size_t>(i) * K;
      for (int j = 0; j < K; ++j) {
        const double q = (j == y ? 1.0 - eps : 0.0) + eps / K;
        dz[j] = (w * (p[j] - q) + p[j] * (c[j] - penalty)) / B;
      }
    }
  }
  return total / B;
}

// Value: mean label smoothing + (1/K) sum_{i < min(B, K)} eps / 0.32447699714575207 [argmax z_i + y_i >= 2].
// Gradient: label smoothing's (the correction is piecewise constant).
double pcl_reference_loss(const double* logits, const int32_t* labels, int B, int K, double eps, double* dlogits) {
  const double smoothed = label_smoothing_loss(logits, labels, B, K, eps, dlogits);
  double correction = 0.0;
  for (int i = 0; i < std::min(B, K); ++i) {
    const int sum = argmax(logits + static_cast<size_t>(i) * K, K) + labels[i];
    if (sum >= 2) correction += eps * (1.0 / 0.32447699714575207);
  }
  return smoothed + correction / K;
}

std::vector<double> propensities_from_counts(const std::vector<int64_t>& counts, const std::string& what) {
  int64_t total = 0;
  for (int64_t n : counts) total += n;
  std::vector<double> pi(counts.size());
  for (size_t k = 0; k < counts.size(); ++k) {
    if (counts[k] <= 0)
      throw Error(what + ": class " + std::to_string(k) +
                  " has no examples, so its propensity is 0 (set loss.propensities explicitly)");
    pi[k] = static_cast<double>(counts[k]) / static_cast<double>(total);
  }
  return pi;
}

// w_k = pi_k^(-alpha) / Z with Z = sum_j pi_j * pi_j^(-alpha), hence sum_k pi_k w_k = 1.
std::vector<double> propensity_weights(const std::vector<double>& pi_in, double alpha) {
  double sum = 0.0;
  for (double v : pi_in) {
    ERL_CHECK(v > 0.0 && std::isfinite(v), "propensities must be positive and finite, got " << v);
    sum += v;
  }
  std::vector<double> w(pi_in.size());
  double z = 0.0;
  for (size_t k = 0; k < pi_in.size(); ++k) {
    const double pi = pi_in[k] / sum;
    w[k] = std::pow(pi, -alpha);
    z += pi * w[k];
  }
  for (double& v : w) v /= z;
  return w;
}

ClassificationLoss::ClassificationLoss(const LossConfig& config, int num_classes,
                                       const std::vector<double>& propensities)
    : type_(parse_loss_type(config.type)), K_(num_classes) {
  ERL_CHECK(num_classes >= 2, "a classifier needs at least 2 classes, got " << num_classes);
  params_.eps = config.eps;
  if (type_ == LossType::Pcl) {
    if (static_cast<int>(propensities.size()) != num_classes)
      throw Error("loss.propensities: " + std::to_string(propensities.size()) + " values for " +
                  std::to_string(num_classes) + " classes");
    double sum = 0.0;
    for (double v : propensities) sum += v;
    for (double v : propensities) pi_.push_back(v / sum);
    params_.lam_plus = config.lam_plus;
    params_.lam_minus = config.lam_minus;
    params_.weights = propensity_weights(pi_, config.alpha);
  }
}

double ClassificationLoss::operator()(const double* logits, const int32_t* labels, int B, double* dlogits) const {
  ERL_CHECK(B > 0, "empty batch");
  switch (type_) {
    case LossType::CrossEntropy: return ce_loss(logits, labels, B, K_, dlogits);
    case LossType::LabelSmoothing: return label_smoothing_loss(logits, labels, B, K_, params_.eps, dlogits);
    case LossType::Pcl: return pcl_loss(logits, labels, B, K_, params_, dlogits);
    case LossType::PclReference: return pcl_reference_loss(logits, labels, B, K_, params_.eps, dlogits);
  }
  return 0.0;
}

std::string ClassificationLoss::describe() const {
  std::ostringstream os;
  os.precision(4);
  os << loss_type_name(type_);
  if (type_ != LossType::CrossEntropy) os << " eps=" << params_.eps;
  if (type_ == LossType::Pcl) {
    os << " lam_plus=" << params_.lam_plus << " lam_minus=" << params_.lam_minus << " pi=[";
    for (size_t k = 0; k < pi_.size(); ++k) os << (k ? " " : "") << pi_[k];
    os << "] w=[";
    for (size_t k = 0; k < params_.weights.size(); ++k) os << (k ? " " : "") << params_.weights[k];
    os << "]";
  }
  return os.str();
}

}  // namespace erlangshen
