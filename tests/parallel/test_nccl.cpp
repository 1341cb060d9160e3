// The NCCL communicator on one GPU (one rank: a single GPU cannot host two NCCL ranks). Bootstrapped over a
// SelfCommunicator, so it needs no mpirun. Skips when the build has CUDA but the machine has no GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

#include "parallel/nccl_communicator.h"

namespace erlangshen {
namespace {

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

template <class T>
T* to_device(const std::vector<T>& v) {
  T* d = nullptr;
  EXPECT_EQ(cudaMalloc(&d, v.size() * sizeof(T)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

template <class T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> v(n);
  EXPECT_EQ(cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return v;
}

TEST(Nccl, SingleRankCollectives) {
  if (!have_gpu()) GTEST_SKIP() << "no GPU";
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  SelfCommunicator bootstrap("world");
  NcclCommunicator nccl(bootstrap, "world", 30);
  ASSERT_EQ(nccl.size(), 1);
  for (size_t n : {size_t{1}, size_t{7}, size_t{1001}, size_t{65537}}) {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = 0.25f + static_cast<float>(i % 17);
    float* d = to_device(x);
    nccl.all_reduce(d, n, ReduceOp::Sum);
    nccl.all_reduce(d, n, ReduceOp::Max);
    nccl.reduce_scatter(d, {n});
    nccl.all_gather(d, {n});
    nccl.broadcast(d, n, 0);
    nccl.all_reduce_async(d, n, ReduceOp::Sum)->wait();
    nccl.reduce_scatter_async(d, {n})->wait();
    nccl.all_gather_async(d, {n})->wait();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(to_host(d, n), x) << "n " << n;
    cudaFree(d);
  }
  std::vector<double> y{1.5, -2.0, 3.25};
  double* dy = to_device(y);
  nccl.all_reduce(dy, y.size(), ReduceOp::Sum);
  EXPECT_EQ(to_host(dy, y.size()), y);
  cudaFree(dy);
  nccl.barrier();
  const CommStats s = nccl.stats();
  EXPECT_GT(s.bytes, 0u);
  EXPECT_GE(s.async_busy_s, 0.0);
}

}  // namespace
}  // namespace erlangshen
