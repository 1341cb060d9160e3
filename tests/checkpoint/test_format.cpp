// File-format tests: CRC-32C, safetensors round trip and corruption detection, manifest round trip,
// checkpoint folder life cycle (latest, incomplete folders, pruning).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/crc32c.h"
#include "checkpoint/file_io.h"
#include "checkpoint/manifest.h"
#include "checkpoint/safetensors.h"
#include "ckpt_test_util.h"
#include "runtime/check.h"

namespace erlangshen::ckpt {
namespace {

using ckpt_testing::ScratchDir;
namespace fs = std::filesystem;

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c ^= 0x10;
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

TEST(Crc32c, KnownValuesAndPieces) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  std::vector<unsigned char> zeros(32, 0);
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 test vector
  std::vector<unsigned char> data(1000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i * 7 + 3);
  const uint32_t whole = crc32c(data.data(), data.size());
  EXPECT_EQ(crc32c(data.data() + 333, 667, crc32c(data.data(), 333)), whole);
  EXPECT_EQ(crc32c_hex(0xE3069283u), "e3069283");
}

// Bit-at-a-time CRC-32C: the definition, against which the fast paths are checked.
uint32_t crc32c_bitwise(const unsigned char* p, size_t n) {
  uint32_t c = ~0u;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

TEST(Crc32c, LargeAndUnalignedInputsMatchTheDefinition) {
  // Long enough for the three-chain path (3 x 8 KiB blocks) several times over, at odd offsets and lengths,
  // and continued across pieces whose boundaries fall inside a block.
  std::vector<unsigned char> data(200000);
  uint32_t x = 12345;
  for (auto& b : data) x = x * 1664525u + 1013904223u, b = static_cast<unsigned char>(x >> 24);
  for (size_t offset : {0, 1, 7}) {
    for (size_t n : {24575, 24576, 24577, 49153, 199990}) {
      const uint32_t want = crc32c_bitwise(data.data() + offset, n);
      EXPECT_EQ(crc32c(data.data() + offset, n), want) << "offset " << offset << " length " << n;
      const size_t cut = n / 3 + 5;
      EXPECT_EQ(crc32c(data.data() + offset + cut, n - cut, crc32c(data.data() + offset, cut)), want);
    }
  }
}

TEST(Safetensors, RoundTripWithMetadataAndAdjacentTensors) {
  ScratchDir dir("st_roundtrip");
  std::vector<float> flat(6 + 4 + 3);
  for (size_t i = 0; i < flat.size(); ++i) flat[i] = 0.5f * static_cast<float>(i) - 1.0f;
  std::vector<float> other{42.0f};
  SafetensorsWriter w;
  w.add("a.weight", {2, 3}, flat.data());
  w.add("b.bias", {4}, flat.data() + 6);      // adjacent in memory: coalesced into one write
  w.add("c", {3}, flat.data() + 10);
  w.add("scalarish", {1}, other.data());
  w.set_metadata("format", "pt");
  const std::string path = dir.file("x.safetensors");
  const auto written = w.write(path);
  EXPECT_EQ(written.bytes, fs::file_size(path));
  EXPECT_EQ(written.bytes % 8, (8 + 14 * 4) % 8);  // header padded to 8: data starts aligned

  SafetensorsReader r(path);
  ASSERT_EQ(r.tensors().size(), 4u);
  EXPECT_EQ(r.tensors()[0].name, "a.weight");
  EXPECT_EQ(r.at("a.weight").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r.metadata().at("format"), "pt");
  std::vector<float> back(6);
  r.read_f32("a.weight", back.data());
  EXPECT_EQ(0, std::memcmp(back.data(), flat.data(), 6 * sizeof(float)));
  float x = 0;
  r.read_f32("scalarish", &x);
  EXPECT_EQ(x, 42.0f);
  std::vector<float> part(2);
  r.read_f32_range("b.bias", 1, 2, part.data());
  EXPECT_EQ(part[0], flat[7]);
  EXPECT_EQ(part[1], flat[8]);
  EXPECT_THROW(r.at("nope"), Error);
}

TEST(Safetensors, LargeTensorsAreStreamedInChunksAndChecksummedOnTheWay) {
  // 3.5 MiB + a few bytes spans several write chunks (1 MiB) and writeback windows; the small tensors come after it
  // and sit between chunk boundaries. The file must hold the bytes as laid out by the header, with each
  // tensor's checksum, and the mid-write hook must run exactly once.
  ScratchDir dir("st_stream");
  std::vector<float> big((size_t(7) << 17) + 3), small(5);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i % 4099) * 0.25f;
  for (size_t i = 0; i < small.size(); ++i) small[i] = -static_cast<float>(i);
  SafetensorsWriter w;
  w.add("big", {static_cast<int64_t>(big.size())}, big.data());
  w.add("small", {5}, small.data());
  int hooks = 0;
  const std::string path = dir.file("big.safetensors");
  const auto written = w.write(path, [&] { ++hooks; });
  EXPECT_EQ(hooks, 1);
  EXPECT_EQ(written.crc.at("big"), crc32c(big.data(), big.size() * 4));
  EXPECT_EQ(written.crc.at("small"), crc32c(small.data(), small.size() * 4));

  const std::string bytes = ckpt_testing::read_file(path);
  ASSERT_EQ(bytes.size(), written.bytes);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const size_t data = 8 + n;
  EXPECT_EQ(0, std::memcmp(bytes.data() + data, big.data(), big.size() * 4));
  EXPECT_EQ(0, std::memcmp(bytes.data() + data + big.size() * 4, small.data(), small.size() * 4));
  SafetensorsReader r(path);
  uint32_t stored = 0;
  ASSERT_TRUE(r.stored_crc("big", &stored));
  EXPECT_EQ(stored, written.crc.at("big"));
  std::vector<float> back(big.size());
  r.read_f32("big", back.data());  // verifies the checksum
  EXPECT_EQ(back, big);
}

TEST(Safetensors, FlippedByteIsDetectedNamingFileAndTensor) {
  ScratchDir dir("st_flip");
  std::vector<float> a(1000, 1.25f), b(10, -3.0f);
  SafetensorsWriter w;
  w.add("first", {1000}, a.data());
  w.add("second", {10}, b.data());
  const std::string path = dir.file("model-tp00.safetensors");
  const auto written = w.write(path);
  flip_byte(path, written.bytes - 4 * 10 - 100);  // inside "first"
  SafetensorsReader r(path);
  std::vector<float> out(1000);
  try {
    r.read_f32("first", out.data());
    FAIL() << "corruption not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-tp00.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("first"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(r.read_f32("second", out.data()));
}

TEST(Safetensors, TruncatedAndGarbageFilesAreRefusedNamingTheFile) {
  ScratchDir dir("st_trunc");
  std::vector<float> a(100, 1.0f);
  SafetensorsWriter w;
  w.add("t", {100}, a.data());
  const std::string path = dir.file("m.safetensors");
  w.write(path);
  fs::resize_file(path, fs::file_size(path) - 8);
  try {
    SafetensorsReader r(path);
    FAIL() << "truncation not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.safetensors"), std::string::npos) << e.what();
  }
  const std::string junk = dir.file("junk.safetensors");
  std::ofstream(junk) << "this is not a safetensors file at all";
  EXPECT_THROW(SafetensorsReader{junk}, Error);
}

TEST(Safetensors, ReadsHalfPrecisionFromElsewhere) {
  // A file as another tool writes it: BF16 and F16 tensors, no checksums.
  ScratchDir dir("st_half");
  const std::string header = R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}})";
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  const uint64_t n = padded.size();
  std::string bytes(reinterpret_cast<const char*>(&n), 8);
  bytes += padded;
  const uint16_t vals[4] = {0x3C00 /*1.0*/, 0xC000 /*-2.0*/, 0x3FC0 /*1.5*/, 0xC040 /*-3.0*/};
  bytes.append(reinterpret_cast<const char*>(vals), 8);
  const std::string path = dir.file("half.safetensors");
  std::ofstream(path, std::ios::binary) << bytes;
  SafetensorsReader r(path);
  float out[2];
  r.read_f32("h", out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  r.read_f32("b", out);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -3.0f);
}

TEST(Manifest, RoundTrip) {
  ScratchDir dir("manifest");
  Manifest m;
  m.step = 1000;
  m.consumed_samples = 64000;
  m.model.hidden = 128;
  m.model.activation = Activation::GeluExact;
  m.vocab_sha256 = "abc";
  m.tp = 2;
  m.dp = 4;
  m.zero1 = true;
  m.data_cursors = {nlohmann::json{{"step", 1000}}, nlohmann::json{{"step", 1000}}};
  TensorRecord t;
  t.name = "bert.pooler.dense.weight";
  t.kind = TensorKind::ExpAvgSq;
  t.file = "optim-tp01-dp03.safetensors";
  t.key = "exp_avg_sq/bert.pooler.dense.weight";
  t.global_shape = {128, 128};
  t.split_axis = -1;
  t.tp_rank = 1;
  t.dp_rank = 3;
  t.local_shape = {128, 128};
  t.range_begin = 10;
  t.range_end = 20;
  t.crc32c = "deadbeef";
  m.tensors.push_back(t);
  m.files.push_back({"optim-tp01-dp03.safetensors", 12345});
  write_file_atomic(dir.file("manifest.json"), m.to_json().dump(1));
  const Manifest b = Manifest::load(dir.path().string());
  EXPECT_EQ(b.step, 1000);
  EXPECT_EQ(b.consumed_samples, 64000);
  EXPECT_EQ(b.model.hidden, 128);
  EXPECT_EQ(b.model.activation, Activation::GeluExact);
  EXPECT_TRUE(b.zero1);
  EXPECT_EQ(b.data_cursors.size(), 2u);
  ASSERT_EQ(b.tensors.size(), 1u);
  EXPECT_EQ(b.tensors[0].kind, TensorKind::ExpAvgSq);
  EXPECT_EQ(b.tensors[0].range_end, 20);
  EXPECT_EQ(b.tensors[0].crc32c, "deadbeef");
  EXPECT_TRUE(b.has_optimizer());
  EXPECT_EQ(model_mismatch(b.model, b.model), "");
  ModelConfig other = b.model;
  other.layers += 1;
  EXPECT_NE(model_mismatch(b.model, other).find("model.layers"), std::string::npos);
}

std::string read_file_trim(const fs::path& p) {
  std::string s = ckpt_testing::read_file(p.string());
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// A fake complete step folder.
void make_step(const fs::path& dir, int64_t step) {
  const fs::path temp = dir / temp_folder_name(step);
  fs::create_directories(temp);
  std::ofstream(temp / "manifest.json") << "{}";
  publish(dir.string(), temp.string(), step);
}

TEST(CheckpointDir, LatestIncompleteAndPrune) {
  ScratchDir dir("ckdir");
  const fs::path d = dir.path();
  EXPECT_FALSE(find_latest(d.string()).has_value());
  EXPECT_THROW(resolve_checkpoint(d.string()), Error);
  make_step(d, 5);
  make_step(d, 10);
  EXPECT_EQ(read_file_trim(d / "latest"), "step_00000010");
  EXPECT_EQ(resolve_checkpoint(d.string()), (d / "step_00000010").string());
  EXPECT_EQ(resolve_checkpoint((d / "step_00000005").string()), (d / "step_00000005").string());

  // An interrupted write: a temporary folder, never chosen, removed by prune.
  fs::create_directories(d / temp_folder_name(15));
  std::ofstream(d / temp_folder_name(15) / "manifest.json") << "{}";
  EXPECT_EQ(*find_latest(d.string()), (d / "step_00000010").string());

  // `latest` lost or pointing at an incomplete folder: fall back to the newest complete one.
  fs::remove(d / "latest");
  EXPECT_EQ(*find_latest(d.string()), (d / "step_00000010").string());
  fs::remove(d / "step_00000010" / "COMPLETE");
  EXPECT_EQ(*find_latest(d.string()), (d / "step_00000005").string());
  EXPECT_THROW(resolve_checkpoint((d / "step_00000010").string()), Error);

  make_step(d, 20);
  make_step(d, 25);
  const auto removed = prune(d.string(), 2);
  EXPECT_FALSE(fs::exists(d / temp_folder_name(15)));
  EXPECT_FALSE(fs::exists(d / "step_00000005"));
  EXPECT_TRUE(fs::exists(d / "step_00000020"));
  EXPECT_TRUE(fs::exists(d / "step_00000025"));
  EXPECT_TRUE(fs::exists(d / "step_00000010"));  // incomplete: not a checkpoint, not counted, not touched
}

}  // namespace
}  // namespace erlangshen::ckpt
