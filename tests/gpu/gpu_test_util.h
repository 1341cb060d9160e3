// Helpers for the CUDA-vs-CPU kernel tests: a fixture that skips without a GPU, device buffers, comparisons.
#pragma once
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "runtime/cuda/context.h"
#include "runtime/ops.h"

namespace erlangshen::testing {

#define GPU_CHECK(expr) ASSERT_EQ((expr), cudaSuccess) << #expr

// A device copy of a host vector; get() copies back.
template <class T>
class Dev {
 public:
  explicit Dev(const std::vector<T>& host) : n_(host.size()) {
    if (cudaMalloc(&p_, sizeof(T) * std::max<size_t>(n_, 1)) != cudaSuccess) throw Error("cudaMalloc failed");
    // The backend's ops run on the Context's non-blocking stream, which a plain cudaMemcpy (legacy default
    // stream) does not wait for: synchronise the device around every copy.
    if (n_ && cudaMemcpy(p_, host.data(), sizeof(T) * n_, cudaMemcpyHostToDevice) != cudaSuccess)
      throw Error("cudaMemcpy failed");
    if (cudaDeviceSynchronize() != cudaSuccess) throw Error("cudaDeviceSynchronize failed");
  }
  explicit Dev(size_t n, T value = T(0)) : Dev(std::vector<T>(n, value)) {}
  ~Dev() { cudaFree(p_); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  T* get() { return p_; }
  operator T*() { return p_; }  // NOLINT: pass straight to kernels
  std::vector<T> host() const {
    std::vector<T> h(n_);
    if (cudaDeviceSynchronize() != cudaSuccess) throw Error("cudaDeviceSynchronize failed");
    if (n_ && cudaMemcpy(h.data(), p_, sizeof(T) * n_, cudaMemcpyDeviceToHost) != cudaSuccess)
      throw Error("cudaMemcpy failed");
    return h;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

inline std::vector<float> randn(size_t n, uint32_t seed, float stddev = 1.0f, float mean = 0.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(mean, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

// Element-wise |gpu - cpu| <= rtol * (|cpu| + max|cpu|): relative to the element, with a floor relative to the
// tensor's scale so that elements near zero (cancellation) are judged against the magnitudes that produced them.
// `scale_floor` raises that scale for tensors whose exact value is 0 and which hold only rounding noise (the
// attention key bias gradient: a constant added to every score of a softmax row changes nothing).
inline ::testing::AssertionResult close(const std::vector<float>& gpu, const std::vector<float>& cpu, double rtol,
                                        double scale_floor = 0.0) {
  if (gpu.size() != cpu.size()) return ::testing::AssertionFailure() << "size " << gpu.size() << " vs " << cpu.size();
  double scale = scale_floor;
  for (float c : cpu) scale = std::max(scale, std::fabs(static_cast<double>(c)));
  size_t bad = 0, first = 0;
  double worst = 0.0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double err = std::fabs(static_cast<double>(gpu[i]) - cpu[i]);
    const double tol = rtol * (std::fabs(static_cast<double>(cpu[i])) + scale);
    if (!(err <= tol)) {
      if (bad++ == 0) first = i;
      worst = std::max(worst, err / std::max(scale, 1e-30));
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << cpu.size() << " elements off (first at " << first
                                       << ": gpu " << gpu[first] << " cpu " << cpu[first] << "; worst error / scale "
                                       << worst << ", rtol " << rtol << ")";
}

// v one float off 16-byte alignment: a device copy's get() + 1 points at v's first element on a 4-byte boundary, so
// a kernel with a 4-wide path takes its element-wise one instead.
inline std::vector<float> one_float_off(const std::vector<float>& v) {
  std::vector<float> shifted(v.size() + 1);
  std::copy(v.begin(), v.end(), shifted.begin() + 1);
  return shifted;
}

inline ::testing::AssertionResult bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "size " << a.size() << " vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs " << b[i];
  return ::testing::AssertionSuccess();
}

// Fixture: skips without a GPU; owns a backend Context (FP32 math unless a test switches it).
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available())
      GTEST_SKIP() << "no CUDA GPU visible: CUDA-vs-CPU checks skipped (run tests/gpu/run_checks.sh on a GPU machine)";
    cuda::ContextOptions o;
    o.math = cuda::MathMode::FP32;
    ctx_ = std::make_unique<cuda::Context>(o);
  }
  Exec gpu() const { return Exec{Device::CUDA, ctx_->stream(), ctx_.get()}; }
  static Exec cpu() { return Exec{}; }
  void sync() const { ctx_->synchronize(); }
  std::unique_ptr<cuda::Context> ctx_;
};

constexpr double kFp32Rtol = 1e-5;

}  // namespace erlangshen::testing
