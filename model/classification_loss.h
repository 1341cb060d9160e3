// Fine-tuning losses on a (B, K) batch of classifier logits (DESIGN §5), in double. Each returns the mean
// loss over the batch and, when `dlogits` is non-null, writes d(mean loss)/d(logits) (B, K).
//
// Notation: z = logits of one sample, p = softmax(z), y = gold class, K = classes, lse = log sum_k exp(z_k),
// so -log p_k = lse - z_k and d(-log p_k)/dz_j = p_j - [j == k].
//
//   ce:              L = -log p_y                                        dL/dz_j = p_j - [j == y]
//   label_smoothing: L = (1-eps)(-log p_y) + (eps/K) sum_k (-log p_k)    dL/dz_j = p_j - q_j,
//                    q_j = (1-eps)[j == y] + eps/K  (the smoothed target)
//   pcl:             L = w_y * LS_eps + lam_plus  * sum_{k>y} p_k (k-y) + lam_minus * sum_{k<y} p_k (y-k)
//                      = w_y * LS_eps + sum_k p_k c_k,   c_k = lam_plus (k-y) [k>y] + lam_minus (y-k) [k<y]
//                    dL/dz_j = w_y (p_j - q_j) + p_j (c_j - sum_k p_k c_k)
//                    with w_k = pi_k^(-alpha) / Z, Z = sum_k pi_k^(1-alpha), so that sum_k pi_k w_k = 1.
//   pcl_reference:   the value of the authors' released competition code (Fengshenbang-LM
//                    examples/clue_sim/loss.py, LabelSmoothingCorrectionCrossEntropy), gradient of label smoothing:
//                    L = mean_i LS_eps(i) + (1/K) sum_{i < min(B,K)} corr_i,
//                    corr_i = eps / 0.32447699714575207  if argmax(z_i) + y_i >= 2, else 0.
//                    (Its other branch, "-eps * 0.5945..." when argmax + y == 1 and |argmax - y| != 1, can never
//                    fire for non-negative classes, so it contributes nothing.) The correction is piecewise
//                    constant in z, hence zero gradient; note it is indexed by the first K samples of the batch,
//                    not by class, exactly as in that code.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace erlangshen {

enum class LossType { CrossEntropy, LabelSmoothing, Pcl, PclReference };
LossType parse_loss_type(const std::string& name);  // "ce" | "label_smoothing" | "pcl" | "pcl_reference"
const char* loss_type_name(LossType t);

struct PclParams {
  double eps = 0.1;
  double lam_plus = 0.0;
  double lam_minus = 0.0;
  std::vector<double> weights;  // (K) w_k; empty means all 1
};

double ce_loss(const double* logits, const int32_t* labels, int B, int K, double* dlogits);
double label_smoothing_loss(const double* logits, const int32_t* labels, int B, int K, double eps, double* dlogits);
double pcl_loss(const double* logits, const int32_t* labels, int B, int K, const PclParams& params, double* dlogits);
double pcl_reference_loss(const double* logits, const int32_t* labels, int B, int K, double eps, double* dlogits);

// Class propensities from label counts: pi_k = n_k / sum n. Throws if a class has no examples (its weight
// would be infinite); `what` names the data for the message.
std::vector<double> propensities_from_counts(const std::vector<int64_t>& counts, const std::string& what);
// w_k = pi_k^(-alpha) / sum_j pi_j^(1-alpha). `pi` is normalised to sum 1 first; every entry must be > 0.
std::vector<double> propensity_weights(const std::vector<double>& pi, double alpha);

// The configured loss: picks the formula and holds its parameters (weights fixed at construction).
class ClassificationLoss {
 public:
  // `propensities` (K): loss.propensities when given, else training-label frequencies.
  ClassificationLoss(const LossConfig& config, int num_classes, const std::vector<double>& propensities);

  // Mean loss over B samples; dlogits (B, K) = d(mean loss)/dlogits when non-null.
  double operator()(const double* logits, const int32_t* labels, int B, double* dlogits) const;

  LossType type() const { return type_; }
  int num_classes() const { return K_; }
  const std::vector<double>& propensities() const { return pi_; }
  const std::vector<double>& weights() const { return params_.weights; }
  std::string describe() const;

 private:
  LossType type_;
  int K_;
  std::vector<double> pi_;
  PclParams params_;
};

}  // namespace erlangshen
