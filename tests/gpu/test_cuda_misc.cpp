// CUDA vs CPU: embeddings (vocab-parallel lookup, deterministic scatter), cross-entropy pieces, row gather/scatter,
// the ops dispatch itself, and the side stream's ordering marks.
#include "runtime/cuda/device.h"
#include "runtime/cuda/op_profiler.h"
#include "runtime/device_buffer.h"
#include "runtime/side_stream.h"
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

TEST_F(CudaTest, EmbeddingsForwardBackward) {
  const int B = 3, T = 50, N = B * T, C = 96, V_local = 40, vocab_start = 20, TV = 2;
  std::vector<int32_t> ids(N), types(N);
  std::mt19937 gen(91);
  for (int n = 0; n < N; ++n) {
    ids[n] = static_cast<int32_t>(gen() % 80);  // about half outside the shard [20, 60); many repeats
    types[n] = static_cast<int32_t>(gen() % TV);
  }
  const auto word = randn(size_t(V_local) * C, 92), pos = randn(size_t(T) * C, 93), type = randn(size_t(TV) * C, 94),
             dout = randn(size_t(N) * C, 95), dword0 = randn(word.size(), 96), dpos0 = randn(pos.size(), 97),
             dtype0 = randn(type.size(), 98);
  std::vector<float> out_c(size_t(N) * C), dword_c = dword0, dpos_c = dpos0, dtype_c = dtype0;
  ops::word_embedding_forward(cpu(), out_c.data(), ids.data(), word.data(), N, C, vocab_start, V_local);
  ops::position_type_embedding_forward(cpu(), out_c.data(), types.data(), pos.data(), type.data(), B, T, C);
  cpu::word_embedding_backward(dword_c.data(), dout.data(), ids.data(), N, C, vocab_start, V_local);  // the scan
  ops::position_type_embedding_backward(cpu(), dpos_c.data(), dtype_c.data(), dout.data(), types.data(), B, T, C, TV);

  Dev<int32_t> d_ids(ids), d_types(types);
  Dev<float> d_word(word), d_pos(pos), d_type(type), d_dout(dout), d_out(out_c.size()), d_dword(dword0),
      d_dpos(dpos0), d_dtype(dtype0);
  ops::word_embedding_forward(gpu(), d_out.get(), d_ids.get(), d_word.get(), N, C, vocab_start, V_local);
  ops::position_type_embedding_forward(gpu(), d_out.get(), d_types.get(), d_pos.get(), d_type.get(), B, T, C);
  TokenRowsBuilder rows;
  rows.build(ids.data(), N, vocab_start, V_local);
  Dev<int32_t> d_row(rows.row()), d_start(rows.start()), d_tokens(rows.tokens());
  ops::word_embedding_backward_rows(gpu(), d_dword.get(), d_dout.get(),
                                    TokenRows{rows.rows(), d_row.get(), d_start.get(), d_tokens.get()}, C);
  ops::position_type_embedding_backward(gpu(), d_dpos.get(), d_dtype.get(), d_dout.get(), d_types.get(), B, T, C, TV);
  EXPECT_TRUE(close(d_out.host(), out_c, kFp32Rtol));
  // Word rows are summed in token order on both backends: the same float additions, the same bits.
  EXPECT_TRUE(bit_equal(d_dword.host(), dword_c)) << "dword";
  EXPECT_TRUE(close(d_dpos.host(), dpos_c, kFp32Rtol));
  EXPECT_TRUE(close(d_dtype.host(), dtype_c, kFp32Rtol));
}

// What the model runs: the backward from the token-rows index (runtime/token_rows.h) in device memory, with rows
// longer than the kernel's 16-row unroll (the [MASK]-like id: 334 tokens) and shorter ones; C % 4 == 0 takes the
// float4 kernel, C = 301 the scalar one, C = 2048 several column blocks. The scan's CPU bits either way.
TEST_F(CudaTest, WordEmbeddingBackwardFromTokenRows) {
  const int N = 1000, V_local = 75, vocab_start = 10;
  std::vector<int32_t> ids(N);
  std::mt19937 gen(291);
  for (int n = 0; n < N; ++n) ids[n] = static_cast<int32_t>(n % 3 == 0 ? 77 : gen() % 100);
  TokenRowsBuilder rows;
  rows.build(ids.data(), N, vocab_start, V_local);
  ASSERT_GT(rows.rows(), 10);
  Dev<int32_t> d_row(rows.row()), d_start(rows.start()), d_tokens(rows.tokens());
  const TokenRows device_rows{rows.rows(), d_row.get(), d_start.get(), d_tokens.get()};
  for (int C : {300, 301, 2048}) {
    SCOPED_TRACE(::testing::Message() << "C=" << C);
    const auto dout = randn(size_t(N) * C, 295), dword0 = randn(size_t(V_local) * C, 296);
    std::vector<float> dword_c = dword0;
    cpu::word_embedding_backward(dword_c.data(), dout.data(), ids.data(), N, C, vocab_start, V_local);
    Dev<float> d_dout(dout), d_dword(dword0);
    ops::word_embedding_backward_rows(gpu(), d_dword.get(), d_dout.get(), device_rows, C);
    EXPECT_TRUE(bit_equal(d_dword.host(), dword_c)) << "dword";
  }
}

TEST_F(CudaTest, CrossEntropyPieces) {
  const int M = 33, V = 1000, vocab_start = 500;
  const auto logits = randn(size_t(M) * V, 101, 3.0f), dloss = randn(M, 102);
  std::vector<int32_t> targets(M);
  for (int m = 0; m < M; ++m) targets[m] = (m * 97) % 2000;  // some local, some on other shards
  std::vector<float> mx_c(M), se_c(M), tl_c(M), dl_c(logits.size());
  ops::ce_rowmax(cpu(), mx_c.data(), logits.data(), M, V);
  ops::ce_sumexp_target(cpu(), se_c.data(), tl_c.data(), logits.data(), mx_c.data(), targets.data(), M, V, vocab_start);
  ops::ce_backward(cpu(), dl_c.data(), logits.data(), mx_c.data(), se_c.data(), targets.data(), dloss.data(), M, V,
                   vocab_start);
  Dev<float> d_logits(logits), d_dloss(dloss), d_mx(M), d_se(M), d_tl(M), d_dl(logits.size());
  Dev<int32_t> d_targets(targets);
  ops::ce_rowmax(gpu(), d_mx.get(), d_logits.get(), M, V);
  ops::ce_sumexp_target(gpu(), d_se.get(), d_tl.get(), d_logits.get(), d_mx.get(), d_targets.get(), M, V, vocab_start);
  ops::ce_backward(gpu(), d_dl.get(), d_logits.get(), d_mx.get(), d_se.get(), d_targets.get(), d_dloss.get(), M, V,
                   vocab_start);
  EXPECT_TRUE(bit_equal(d_mx.host(), mx_c)) << "max is exact";
  EXPECT_TRUE(close(d_se.host(), se_c, kFp32Rtol));
  EXPECT_TRUE(bit_equal(d_tl.host(), tl_c)) << "target logit is a copy";
  EXPECT_TRUE(close(d_dl.host(), dl_c, kFp32Rtol));
}

TEST_F(CudaTest, GatherScatterRows) {
  const int N = 200, C = 130, M = 31;
  std::vector<int32_t> idx(M);
  for (int m = 0; m < M; ++m) idx[m] = (m * 37 + 5) % N;  // distinct
  const auto inp = randn(size_t(N) * C, 111), g = randn(size_t(M) * C, 112), d0 = randn(inp.size(), 113);
  std::vector<float> out_c(size_t(M) * C), d_c = d0;
  ops::gather_rows(cpu(), out_c.data(), inp.data(), idx.data(), M, C);
  ops::scatter_add_rows(cpu(), d_c.data(), g.data(), idx.data(), M, C);
  Dev<float> d_inp(inp), d_g(g), d_out(out_c.size()), d_d(d0);
  Dev<int32_t> d_idx(idx);
  ops::gather_rows(gpu(), d_out.get(), d_inp.get(), d_idx.get(), M, C);
  ops::scatter_add_rows(gpu(), d_d.get(), d_g.get(), d_idx.get(), M, C);
  EXPECT_TRUE(bit_equal(d_out.host(), out_c));
  EXPECT_TRUE(bit_equal(d_d.host(), d_c));
}

// bench --profile's two tables: each op once under its name (the GEMM inside matmul_forward is not a second op),
// and each cuBLASLt GEMM under its shape with 2 m n k FLOPs per call.
TEST_F(CudaTest, ProfilerListsOpsAndGemmShapes) {
  const int N = 24, C = 16, OC = 40;
  Dev<float> x(size_t(N) * C, 0.5f), w(size_t(OC) * C, 0.25f), b(OC, 1.0f), y(size_t(N) * OC);
  cuda::OpProfiler profiler(ctx_->stream());
  ctx_->set_profiler(&profiler);
  for (int rep = 0; rep < 2; ++rep) ops::matmul_forward(gpu(), y.get(), x.get(), w.get(), b.get(), N, C, OC);
  ops::fill(gpu(), y.get(), int64_t(N) * OC, 0.0f);
  ctx_->set_profiler(nullptr);
  const cuda::OpProfiler::Profile p = profiler.collect();
  ASSERT_EQ(p.ops.size(), 2u);
  for (const auto& row : p.ops) EXPECT_EQ(row.calls, row.name == "matmul_forward" ? 2 : 1) << row.name;
  ASSERT_EQ(p.gemms.size(), 1u);
  const auto& g = p.gemms[0];
  EXPECT_EQ(g.calls, 2);
  EXPECT_EQ(g.flops, 2 * 2.0 * N * C * OC);
  // cuBLAS is column-major: out^T (OC x N) = W (C x OC)^T x^T, so m = OC, n = N, k = C with A transposed.
  EXPECT_NE(g.name.find("matmul_forward TN 40x24x16"), std::string::npos) << g.name;
  EXPECT_NE(g.name.find("BIAS"), std::string::npos) << g.name;
  EXPECT_TRUE(profiler.collect().gemms.empty()) << "collect() clears what it read";
}

TEST_F(CudaTest, OpsWithoutContextNameTheMissingContext) {
  Dev<float> x(16), y(16);
  const Exec bare{Device::CUDA, ctx_->stream(), nullptr};
  ops::fill(bare, x.get(), 16, 1.0f);  // element-wise ops need only the stream
  try {
    ops::matmul_forward(bare, y.get(), x.get(), x.get(), static_cast<const float*>(nullptr), 4, 4, 4);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("backend context"), std::string::npos) << e.what();
  }
}

// SideStream (runtime/side_stream.h): side work the main stream waits for (a mark) is done before the main stream's
// later work reads its output, and the side follows the main stream's earlier work. Under the CUDA emulation, which
// runs each stream's work only when something needs it, side work nobody waits for has not run when the main
// stream's result is read back: the check that the emulation would catch a missing wait (on a GPU that half would
// be a race, so it runs under the emulation only).
TEST_F(CudaTest, SideStreamMarksOrderTheMainStream) {
  const int64_t n = 4096;
  Dev<float> x(static_cast<size_t>(n), 0.0f), y(static_cast<size_t>(n), 0.0f);
  SideStream side(gpu(), 2);
  ops::fill(gpu(), x.get(), n, 3.0f);
  side.follow_main();
  ops::scale(side.exec(), x.get(), n, 2.0);  // 6, after the main stream's fill
  side.mark(0);
  side.main_waits_for(0);
  ops::add_inplace(gpu(), y.get(), x.get(), n);  // 6
  sync();
  EXPECT_TRUE(bit_equal(y.host(), std::vector<float>(static_cast<size_t>(n), 6.0f)));

  if (cuda::device_name().find("emulation") == std::string::npos) return;
  ops::fill(side.exec(), x.get(), n, 1.0f);  // not waited for: pending
  side.mark(1);
  ops::add_inplace(gpu(), y.get(), x.get(), n);  // 6 + 6: the side's fill has not run
  std::vector<float> host(static_cast<size_t>(n));
  copy_to_host(gpu(), host.data(), y.get(), static_cast<size_t>(n));  // waits for the main stream only
  EXPECT_TRUE(bit_equal(host, std::vector<float>(static_cast<size_t>(n), 12.0f)))
      << "the emulation ran side work that the main stream never waited for";
  side.synchronize();
  EXPECT_TRUE(bit_equal(x.host(), std::vector<float>(static_cast<size_t>(n), 1.0f)));
}

}  // namespace
}  // namespace erlangshen::testing
