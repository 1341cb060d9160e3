// Host-or-device memory (runtime/device_buffer.h) on the CPU, the arena on the CPU, the train.device key and the
// backend choice without a GPU. The device side is tested in tests/gpu (test_model_gpu_parity).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/config.h"
#include "runtime/device_buffer.h"

namespace erlangshen {
namespace {

TEST(DeviceBuffer, CpuBufferIsZeroedHostMemoryWithCopies) {
  Buffer<float> b(Exec{}, 5, "test");
  ASSERT_EQ(b.size(), 5u);
  EXPECT_FALSE(b.on_device());
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b.data()[i], 0.0f);
  const float src[3] = {1.5f, -2.0f, 3.25f};
  b.copy_from_host(src, 1, 3);
  EXPECT_EQ(b.to_host(), (std::vector<float>{0.0f, 1.5f, -2.0f, 3.25f, 0.0f}));
  float dst[2] = {};
  b.copy_to_host(dst, 2, 2);
  EXPECT_EQ(dst[0], -2.0f);
  EXPECT_EQ(dst[1], 3.25f);
  EXPECT_THROW(b.copy_to_host(dst, 4, 2), Error);
}

TEST(DeviceBuffer, StagingAndHostViewsAreNoCopiesOnTheCpu) {
  const std::vector<int32_t> ids = {3, 1, 4};
  int32_t staging[3] = {};
  EXPECT_EQ(stage_input(Exec{}, staging, ids.data(), ids.size()), ids.data());
  EXPECT_EQ(staging[0], 0);
  std::vector<float> scratch;
  const float stats[2] = {0.5f, 0.25f};
  EXPECT_EQ(host_view(Exec{}, stats, 2, scratch), stats);
  EXPECT_TRUE(scratch.empty());
  synchronize(Exec{});  // no-op
}

TEST(DeviceBuffer, CpuArenaIsAlignedHostMemory) {
  Arena measure;
  measure.alloc<float>(10);
  measure.alloc<int32_t>(3);
  Arena a;
  a.reserve(measure.bytes_needed(), Device::CPU);
  float* f = a.alloc<float>(10);
  int32_t* i = a.alloc<int32_t>(3);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f) % Arena::kAlign, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(i) % Arena::kAlign, 0u);
  f[9] = 1.0f;
  i[2] = 7;
  EXPECT_THROW(a.alloc<float>(1000), Error);
}

TEST(DeviceBuffer, TrainDeviceKeyIsStrict) {
  EXPECT_EQ(load_config("", {}).train.device, "cpu");
  EXPECT_EQ(load_config("", {"train.device=cuda"}).train.device, "cuda");
  try {
    load_config("", {"train.device=gpu"});
    FAIL() << "train.device=gpu accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.device"), std::string::npos) << e.what();
  }
}

TEST(DeviceBuffer, CudaBackendWithoutAGpuIsAnErrorNamingTheKey) {
  Backend cpu("cpu");
  EXPECT_FALSE(cpu.cuda());
  EXPECT_EQ(cpu.describe(), "cpu");
  if (cuda_available()) GTEST_SKIP() << "a GPU is visible: the error path is not reachable here";
  try {
    Backend b("cuda", 0, "run.yaml");
    FAIL() << "train.device=cuda accepted without a GPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("run.yaml: train.device=cuda"), std::string::npos) << e.what();
  }
  // Device memory needs a GPU too.
  EXPECT_THROW(Buffer<float>(Exec{Device::CUDA}, 4), Error);
}

}  // namespace
}  // namespace erlangshen
