// Fine-tuning losses (model/classification_loss.h): finite-difference gradient checks, the reductions
// pcl -> label_smoothing -> ce, the propensity-weight normalisation, pcl_reference against hand-computed values,
// and every loss against an independent PyTorch autograd reference (skipped without python3 + torch).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "model/classification_loss.h"
#include "runtime/check.h"

namespace erlangshen {
namespace {

using LossFn = std::function<double(const double*, const int32_t*, int, int, double*)>;

struct Batch {
  int B, K;
  std::vector<double> z;
  std::vector<int32_t> y;
};

Batch random_batch(int B, int K, uint32_t seed, double scale = 2.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> n(0.0, scale);
  Batch b{B, K, std::vector<double>(static_cast<size_t>(B) * K), std::vector<int32_t>(B)};
  for (double& v : b.z) v = n(gen);
  for (int i = 0; i < B; ++i) b.y[i] = static_cast<int32_t>(gen() % K);
  return b;
}

// Central differences of the loss value vs the analytic dlogits, in double.
void expect_gradient_matches(const LossFn& f, const Batch& b, double tol = 1e-7) {
  std::vector<double> grad(b.z.size());
  f(b.z.data(), b.y.data(), b.B, b.K, grad.data());
  const double h = 1e-5;
  for (size_t i = 0; i < b.z.size(); ++i) {
    std::vector<double> zp = b.z, zm = b.z;
    zp[i] += h;
    zm[i] -= h;
    const double num = (f(zp.data(), b.y.data(), b.B, b.K, nullptr) - f(zm.data(), b.y.data(), b.B, b.K, nullptr)) / (2 * h);
    EXPECT_NEAR(grad[i], num, tol) << "logit " << i;
  }
}

LossConfig loss_config(const std::string& type, double eps, double alpha = 0, double lp = 0, double lm = 0) {
  LossConfig c;
  c.type = type;
  c.eps = eps;
  c.alpha = alpha;
  c.lam_plus = lp;
  c.lam_minus = lm;
  return c;
}

TEST(Losses, GradientCheckCrossEntropy) {
  for (int K : {2, 3, 5}) expect_gradient_matches(ce_loss, random_batch(6, K, 11 + K));
}

TEST(Losses, GradientCheckLabelSmoothing) {
  for (double eps : {0.0, 0.1, 0.3})
    expect_gradient_matches([eps](auto z, auto y, int B, int K, double* d) { return label_smoothing_loss(z, y, B, K, eps, d); },
                            random_batch(7, 3, 5));
}

TEST(Losses, GradientCheckPcl) {
  const std::vector<double> pi = {0.245, 0.63, 0.125};
  for (double alpha : {0.0, 0.5, 1.0})
    for (double lp : {0.0, 0.3})
      for (double lm : {0.0, 0.7}) {
        PclParams p;
        p.eps = 0.1;
        p.lam_plus = lp;
        p.lam_minus = lm;
        p.weights = propensity_weights(pi, alpha);
        expect_gradient_matches([&p](auto z, auto y, int B, int K, double* d) { return pcl_loss(z, y, B, K, p, d); },
                                random_batch(8, 3, 17));
      }
}

TEST(Losses, GradientCheckPclManyClasses) {
  PclParams p;
  p.eps = 0.2;
  p.lam_plus = 0.5;
  p.lam_minus = 0.25;
  p.weights = propensity_weights({0.1, 0.2, 0.3, 0.25, 0.15}, 0.7);
  expect_gradient_matches([&p](auto z, auto y, int B, int K, double* d) { return pcl_loss(z, y, B, K, p, d); },
                          random_batch(9, 5, 23));
}

TEST(Losses, GradientCheckPclReferenceIsLabelSmoothingGradient) {
  // Away from argmax ties the correction is locally constant, so finite differences of pcl_reference's value
  // equal label smoothing's gradient, which is what pcl_reference returns.
  const Batch b = random_batch(6, 3, 31, 3.0);
  expect_gradient_matches([](auto z, auto y, int B, int K, double* d) { return pcl_reference_loss(z, y, B, K, 0.1, d); }, b);
  std::vector<double> g1(b.z.size()), g2(b.z.size());
  pcl_reference_loss(b.z.data(), b.y.data(), b.B, b.K, 0.1, g1.data());
  label_smoothing_loss(b.z.data(), b.y.data(), b.B, b.K, 0.1, g2.data());
  for (size_t i = 0; i < g1.size(); ++i) EXPECT_EQ(g1[i], g2[i]);
}

TEST(Losses, PclReducesToLabelSmoothingAndCrossEntropy) {
  const Batch b = random_batch(10, 3, 41);
  const std::vector<double> pi = {0.2, 0.7, 0.1};  // any propensities: alpha = 0 makes every weight 1
  for (double eps : {0.0, 0.1, 0.25}) {
    ClassificationLoss pcl(loss_config("pcl", eps, 0, 0, 0), 3, pi);
    std::vector<double> gp(b.z.size()), gl(b.z.size()), gc(b.z.size());
    const double lp = pcl(b.z.data(), b.y.data(), b.B, gp.data());
    const double ll = label_smoothing_loss(b.z.data(), b.y.data(), b.B, 3, eps, gl.data());
    EXPECT_NEAR(lp, ll, 1e-14);
    for (size_t i = 0; i < gp.size(); ++i) EXPECT_NEAR(gp[i], gl[i], 1e-15);
    if (eps == 0.0) {
      const double lc = ce_loss(b.z.data(), b.y.data(), b.B, 3, gc.data());
      EXPECT_NEAR(lp, lc, 1e-14);
      for (size_t i = 0; i < gp.size(); ++i) EXPECT_NEAR(gp[i], gc[i], 1e-15);
    }
  }
}

TEST(Losses, PropensityWeightsAreNormalised) {
  for (const std::vector<double>& pi : {std::vector<double>{0.2447, 0.6296, 0.1257}, std::vector<double>{0.5, 0.5},
                                        std::vector<double>{0.05, 0.15, 0.3, 0.5}})
    for (double alpha : {0.0, 0.25, 0.5, 1.0, 2.0}) {
      const std::vector<double> w = propensity_weights(pi, alpha);
      double s = 0.0;
      for (size_t k = 0; k < pi.size(); ++k) s += pi[k] * w[k];
      EXPECT_NEAR(s, 1.0, 1e-12) << "alpha " << alpha;
      if (alpha == 0.0) {
        for (double v : w) EXPECT_NEAR(v, 1.0, 1e-12);
      }
    }
  // alpha = 1: w_k = 1 / (K pi_k) (each class carries the same total weight).
  const std::vector<double> w = propensity_weights({0.25, 0.5, 0.25}, 1.0);
  EXPECT_NEAR(w[0], 4.0 / 3, 1e-12);
  EXPECT_NEAR(w[1], 2.0 / 3, 1e-12);
  // Unnormalised input counts the same as its normalisation.
  const std::vector<double> w2 = propensity_weights({1, 2, 1}, 1.0);
  EXPECT_NEAR(w2[0], 4.0 / 3, 1e-12);
}

TEST(Losses, PropensitiesFromCounts) {
  const std::vector<double> pi = propensities_from_counts({4894, 12592, 2514}, "dev.json");
  EXPECT_NEAR(pi[0], 0.2447, 1e-12);
  EXPECT_NEAR(pi[1], 0.6296, 1e-12);
  EXPECT_NEAR(pi[2], 0.1257, 1e-12);
  try {
    propensities_from_counts({3, 0, 2}, "train.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.json: class 1 has no examples"), std::string::npos) << e.what();
  }
}

TEST(Losses, PclHandComputed) {
  // One sample, logits 0 -> p = 1/3 each; y = 1; eps = 0.1; w_1 = 0.8; lam_plus = 0.5, lam_minus = 0.2.
  // LS = ln 3 (every -log p_k = ln 3). Penalty = 0.5 * (1/3) * 1 + 0.2 * (1/3) * 1 = 0.7 / 3.
  PclParams p;
  p.eps = 0.1;
  p.lam_plus = 0.5;
  p.lam_minus = 0.2;
  p.weights = {1.0, 0.8, 1.0};
  const double z[3] = {0, 0, 0};
  const int32_t y[1] = {1};
  double d[3];
  EXPECT_NEAR(pcl_loss(z, y, 1, 3, p, d), 0.8 * std::log(3.0) + 0.7 / 3, 1e-14);
  // dz_0 = w (1/3 - 0.1/3) + (1/3)(0.2 - 0.7/3);  dz_1 = w (1/3 - 0.9 - 0.1/3) + (1/3)(0 - 0.7/3)
  EXPECT_NEAR(d[0], 0.8 * (0.9 / 3) + (0.2 - 0.7 / 3) / 3, 1e-14);
  EXPECT_NEAR(d[1], 0.8 * (1.0 / 3 - 0.9 - 0.1 / 3) - 0.7 / 9, 1e-14);
  EXPECT_NEAR(d[2], 0.8 * (0.9 / 3) + (0.5 - 0.7 / 3) / 3, 1e-14);
}

TEST(Losses, PclReferenceHandComputed) {
  const double eps = 0.1, unit = eps / 0.32447699714575207 / 3;  // one firing sample adds eps / 0.3244... / C
  const double ln3 = std::log(3.0);
  {  // zero logits: argmax 0 (first), LS = ln 3 per sample. Labels 0, 1: argmax + y = 0, 1 -> no correction.
    const std::vector<double> z(6, 0.0);
    const std::vector<int32_t> y = {0, 1};
    EXPECT_NEAR(pcl_reference_loss(z.data(), y.data(), 2, 3, eps, nullptr), ln3, 1e-14);
  }
  {  // labels 0, 1, 2 -> sums 0, 1, 2: the third sample fires.
    const std::vector<double> z(9, 0.0);
    const std::vector<int32_t> y = {0, 1, 2};
    EXPECT_NEAR(pcl_reference_loss(z.data(), y.data(), 3, 3, eps, nullptr), ln3 + unit, 1e-14);
  }
  {  // argmax 2 with label 0 fires; argmax 1 with label 1 fires; the 4th sample (argmax 2, label 2) is past
     // the first C = 3 samples and does not count.
    const std::vector<double> z = {0, 0, 5,  0, 4, 0,  0, 0, 0,  0, 0, 9};
    const std::vector<int32_t> y = {0, 1, 0, 2};
    std::vector<double> d(12);
    const double ls = label_smoothing_loss(z.data(), y.data(), 4, 3, eps, nullptr);
    EXPECT_NEAR(pcl_reference_loss(z.data(), y.data(), 4, 3, eps, d.data()), ls + 2 * unit, 1e-13);
    // and the hand value of that label smoothing: rows [0,0,5], [0,4,0], [0,0,0], [0,0,9]
    auto row = [&](double a, double b, double c, int label) {
      const double lse = std::log(std::exp(a) + std::exp(b) + std::exp(c));
      const double zz[3] = {a, b, c};
      return (1 - eps) * (lse - zz[label]) + eps / 3 * (3 * lse - a - b - c);
    };
    EXPECT_NEAR(ls, (row(0, 0, 5, 0) + row(0, 4, 0, 1) + row(0, 0, 0, 0) + row(0, 0, 9, 2)) / 4, 1e-13);
  }
}

TEST(Losses, ConfigErrors) {
  EXPECT_THROW(parse_loss_type("focal"), Error);
  EXPECT_THROW(ClassificationLoss(loss_config("pcl", 0.1, 1.0), 3, {0.5, 0.5}), Error);  // 2 propensities, 3 classes
  const double z[3] = {0, 0, 0};
  const int32_t bad[1] = {3};
  EXPECT_THROW(ce_loss(z, bad, 1, 3, nullptr), Error);
}

// ---- independent reference: PyTorch autograd ----

std::string run_python(const std::string& script, const std::string& input) {
  const std::string in_path = std::string(ERLANGSHEN_BINARY_DIR) + "/loss_ref_in_" + std::to_string(::getpid()) + ".json";
  std::ofstream(in_path) << input;
  const std::string cmd = std::string(ERLANGSHEN_PYTHON) + " " + script + " < " + in_path + " 2>/dev/null";
  FILE* f = popen(cmd.c_str(), "r");
  std::string out;
  if (f) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    if (pclose(f) != 0) out.clear();
  }
  std::remove(in_path.c_str());
  return out;
}

TEST(Losses, MatchPyTorchReference) {
  const Batch b = random_batch(12, 3, 77, 2.5);
  nlohmann::json logits = nlohmann::json::array();
  for (int i = 0; i < b.B; ++i) logits.push_back(std::vector<double>(b.z.begin() + i * 3, b.z.begin() + i * 3 + 3));
  const std::vector<double> pi = {0.2447, 0.6296, 0.1257};
  std::vector<LossConfig> cases = {loss_config("ce", 0), loss_config("label_smoothing", 0.1),
                                   loss_config("pcl", 0.1, 0.5, 0.3, 0.2), loss_config("pcl", 0.05, 1.0, 0.0, 0.6),
                                   loss_config("pcl_reference", 0.1)};
  nlohmann::json req = {{"logits", logits}, {"labels", b.y}, {"cases", nlohmann::json::array()}};
  for (const auto& c : cases)
    req["cases"].push_back({{"type", c.type}, {"eps", c.eps}, {"alpha", c.alpha}, {"lam_plus", c.lam_plus},
                            {"lam_minus", c.lam_minus}, {"propensities", pi}});
  const std::string out =
      run_python(std::string(ERLANGSHEN_SOURCE_DIR) + "/tests/reference/classification_loss_reference.py", req.dump());
  if (out.empty()) GTEST_SKIP() << "python3 with torch not available";
  const nlohmann::json res = nlohmann::json::parse(out)["results"];
  for (size_t c = 0; c < cases.size(); ++c) {
    ClassificationLoss loss(cases[c], 3, pi);
    std::vector<double> g(b.z.size());
    const double l = loss(b.z.data(), b.y.data(), b.B, g.data());
    EXPECT_NEAR(l, res[c]["loss"].get<double>(), 1e-12) << cases[c].type;
    for (int i = 0; i < b.B; ++i)
      for (int k = 0; k < 3; ++k) EXPECT_NEAR(g[i * 3 + k], res[c]["grad"][i][k].get<double>(), 1e-14) << cases[c].type;
  }
}

}  // namespace
}  // namespace erlangshen
