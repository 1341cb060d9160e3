// Helpers for the bf16-storage GPU tests (test_cuda_bf16_storage, test_cuda_attention): a tensor held in fp32 or
// bf16 storage with the same bits on the host and the device, and comparisons that allow bf16 rounding.
#pragma once
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "runtime/act.h"
#include "runtime/bf16.h"
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {

inline std::vector<float> widen(const std::vector<bf16>& h) {
  std::vector<float> v(h.size());
  for (size_t i = 0; i < h.size(); ++i) v[i] = to_float(h[i]);
  return v;
}

// x rounded to bf16 values (held in fp32).
inline std::vector<float> bf16_values(std::vector<float> v) {
  for (float& x : v) x = round_to_bf16(x);
  return v;
}

// Spacing of bf16 values at |v|: 2^(floor(log2 |v|) - 7); 0 for 0.
inline double bf16_ulp(double v) {
  if (v == 0.0) return 0.0;
  int e = 0;
  std::frexp(std::fabs(v), &e);  // |v| = f 2^e, f in [0.5, 1)
  return std::ldexp(1.0, e - 8);
}

// One tensor in fp32 or bf16 storage, with the same bits on the host (the CPU reference's copy) and the device.
class Stored {
 public:
  Stored(const std::vector<float>& values, bool bf16_storage) : bf_(bf16_storage) {
    if (bf_) {
      for (float v : values) h_.push_back(to_bf16(v));
      dh_ = std::make_unique<Dev<bf16>>(h_);
    } else {
      f_ = values;
      df_ = std::make_unique<Dev<float>>(f_);
    }
  }
  bool is_bf16() const { return bf_; }
  Act<float> cpu() { return bf_ ? Act<float>::half(h_.data()) : Act<float>(f_.data()); }
  Act<float> gpu() { return bf_ ? Act<float>::half(dh_->get()) : Act<float>(df_->get()); }
  std::vector<float> cpu_values() const { return bf_ ? widen(h_) : f_; }
  std::vector<float> gpu_values() const { return bf_ ? widen(dh_->host()) : df_->host(); }

 private:
  bool bf_;
  std::vector<float> f_;
  std::vector<bf16> h_;
  std::unique_ptr<Dev<float>> df_;
  std::unique_ptr<Dev<bf16>> dh_;
};

// |gpu - cpu| <= ulps * ulp(max(|gpu|, |cpu|)) + rtol (|cpu| + max|cpu|), element-wise (widened values): the ulp
// of the larger value, for a rounding that crosses a power of two.
inline ::testing::AssertionResult close_ulp(const std::vector<float>& gpu, const std::vector<float>& cpu, double ulps,
                                            double rtol) {
  if (gpu.size() != cpu.size()) return ::testing::AssertionFailure() << "size " << gpu.size() << " vs " << cpu.size();
  double scale = 0.0;
  for (float c : cpu) scale = std::max(scale, std::fabs(static_cast<double>(c)));
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double g = gpu[i], c = cpu[i];
    const double tol = ulps * bf16_ulp(std::max(std::fabs(g), std::fabs(c))) + rtol * (std::fabs(c) + scale);
    if (!(std::fabs(g - c) <= tol) && bad++ == 0) first = i;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << cpu.size() << " elements off by more than " << ulps
                                       << " bf16 ulp + " << rtol << " (|ref| + " << scale << "); first at " << first
                                       << ": " << gpu[first] << " vs " << cpu[first];
}

}  // namespace erlangshen::testing
