// Every CPU kernel's backward against central finite differences of its forward, in double precision.
// Each check uses the scalar L = sum(out * R) for a fixed random R, so dL/dout = R.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/philox.h"

namespace erlangshen::cpu {
namespace {

using Vec = std::vector<double>;

Vec random_vec(size_t n, uint32_t seed, double scale = 1.0) {
  Vec v(n);
  const PhiloxKey key{seed, 1234};
  for (size_t i = 0; i < n; ++i) {
    Philox4 r = philox_at(key, i);
    v[i] = scale * (2.0 * uniform_from_bits(r.v[0]) - 1.0);
  }
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Compares `analytic` with d loss / d x by central differences, perturbing x in place.
void expect_grad(Vec& x, const Vec& analytic, const std::function<double()>& loss, const char* what,
                 double tol = 1e-7) {
  ASSERT_EQ(x.size(), analytic.size());
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(analytic[i], numeric, tol * std::max(1.0, std::abs(numeric))) << what << "[" << i << "]";
  }
}

TEST(KernelGradcheck, Matmul) {
  const int N = 5, C = 7, OC = 6;
  Vec x = random_vec(N * C, 1), w = random_vec(OC * C, 2), b = random_vec(OC, 3), R = random_vec(N * OC, 4);
  Vec out(N * OC);
  auto loss = [&] {
    matmul_forward(out.data(), x.data(), w.data(), b.data(), N, C, OC);
    return dot(out, R);
  };
  Vec dx(N * C, 0.0), dw(OC * C, 0.0), db(OC, 0.0);
  matmul_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), N, C, OC);
  expect_grad(x, dx, loss, "dinp");
  expect_grad(w, dw, loss, "dweight");
  expect_grad(b, db, loss, "dbias");
  // large N takes the row-split path, large OC the column-split path
  for (auto [n, oc] : {std::pair{130, 4}, std::pair{3, 300}}) {
    Vec x2 = random_vec(n * C, 5), w2 = random_vec(oc * C, 6), R2 = random_vec(n * oc, 7), o2(n * oc);
    auto loss2 = [&] {
      matmul_forward(o2.data(), x2.data(), w2.data(), static_cast<const double*>(nullptr), n, C, oc);
      return dot(o2, R2);
    };
    Vec dx2(n * C, 0.0), dw2(oc * C, 0.0);
    matmul_backward(dx2.data(), dw2.data(), static_cast<double*>(nullptr), R2.data(), x2.data(), w2.data(), n, C, oc);
    expect_grad(x2, dx2, loss2, "dinp (split)");
    expect_grad(w2, dw2, loss2, "dweight (split)");
  }
}

TEST(KernelGradcheck, LayerNorm) {
  const int N = 4, C = 9;
  Vec x = random_vec(N * C, 8, 2.0), w = random_vec(C, 9), b = random_vec(C, 10), R = random_vec(N * C, 11);
  Vec out(N * C), mean(N), rstd(N);
  auto loss = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5);
    return dot(out, R);
  };
  loss();
  Vec dx(N * C, 0.0), dw(C, 0.0), db(C, 0.0);
  layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
  expect_grad(x, dx, loss, "dinp");
  expect_grad(w, dw, loss, "dweight");
  expect_grad(b, db, loss, "dbias");
}

TEST(KernelGradcheck, BiasGeluBothKinds) {
  for (Activation kind : {Activation::GeluTanh, Activation::GeluExact}) {
    const int N = 3, C = 8;
    Vec x = random_vec(N * C, 12, 3.0), b = random_vec(C, 13), R = random_vec(N * C, 14);
    Vec pre(N * C), act(N * C);
    auto loss = [&] {
      pre = x;
      bias_gelu_forward(act.data(), pre.data(), b.data(), N, C, kind);
      return dot(act, R);
    };
    loss();
    Vec dpre(N * C), db(C, 0.0);
    bias_gelu_backward(dpre.data(), db.data(), R.data(), pre.data(), N, C, kind);
    expect_grad(x, dpre, loss, "dpre");
    expect_grad(b, db, loss, "dbias");
  }
}

TEST(KernelGradcheck, Tanh) {
  Vec x = random_vec(10, 15, 2.0), R = random_vec(10, 16), out(10);
  auto loss = [&] {
    tanh_forward(out.data(), x.data(), 10);
    return dot(out, R);
  };
  loss();
  Vec dx(10);
  tanh_backward(dx.data(), R.data(), out.data(), 10);
  expect_grad(x, dx, loss, "dinp");
}

TEST(KernelGradcheck, AttentionWithPaddingAndDropout) {
  AttentionShape s{2, 5, 2, 3, 7, 1, 4};  // B, T, NH, HS; sample_offset 7, heads 1..2 of 4
  const int C = s.NH * s.HS;
  const std::vector<uint8_t> valid = {1, 1, 1, 1, 0, 1, 1, 1, 0, 0};
  for (float p : {0.0f, 0.3f}) {
    DropoutSpec d{derive_key(3, RngPurpose::AttentionDropout, 1, 0, 0), p};
    Vec qkv = random_vec(s.B * s.Tn * 3 * C, 17, 1.5), R = random_vec(s.B * s.Tn * C, 18);
    Vec out(s.B * s.Tn * C), probs(s.B * s.NH * s.Tn * s.Tn), scratch(attention_scratch_elems(s));
    auto loss = [&] {
      attention_forward(out.data(), probs.data(), scratch.data(), qkv.data(), valid.data(), s, d);
      return dot(out, R);
    };
    loss();
    // padded keys get zero probability
    for (int i = 0; i < s.Tn; ++i) EXPECT_EQ(probs[(0 * s.NH + 1) * s.Tn * s.Tn + i * s.Tn + 4], 0.0);
    Vec dqkv(qkv.size()), scratch2(attention_scratch_elems(s));
    attention_backward(dqkv.data(), scratch2.data(), R.data(), qkv.data(), probs.data(), valid.data(), s, d);
    expect_grad(qkv, dqkv, loss, p > 0 ? "dqkv (dropout)" : "dqkv");
  }
}

TEST(KernelGradcheck, DropoutResidual) {
  const int n = 50;
  DropoutSpec d{derive_key(4, RngPurpose::HiddenDropout, 2, 1, 0), 0.25f};
  Vec x = random_vec(n, 19), res = random_vec(n, 20), R = random_vec(n, 21), out(n);
  auto loss = [&] {
    dropout_residual_forward(out.data(), res.data(), x.data(), n, d, 1000);
    return dot(out, R);
  };
  loss();
  Vec dx(n);
  dropout_backward(dx.data(), R.data(), n, d, 1000);
  expect_grad(x, dx, loss, "dx");
  expect_grad(res, R, loss, "dresid (identity)");
  int dropped = 0;
  for (int i = 0; i < n; ++i) dropped += dx[i] == 0.0;
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, n);
}

TEST(KernelGradcheck, CrossEntropyComposedFromPieces) {
  const int M = 4, V = 11;
  Vec logits = random_vec(M * V, 22, 3.0), R = random_vec(M, 23);
  const std::vector<int32_t> targets = {0, 10, 5, 3};
  Vec rowmax(M), sumexp(M), target(M);
  auto loss = [&] {
    ce_rowmax(rowmax.data(), logits.data(), M, V);
    ce_sumexp_target(sumexp.data(), target.data(), logits.data(), rowmax.data(), targets.data(), M, V, 0);
    double s = 0;
    for (int m = 0; m < M; ++m) s += R[m] * (std::log(sumexp[m]) + rowmax[m] - target[m]);
    return s;
  };
  loss();
  Vec dl(M * V);
  ce_backward(dl.data(), logits.data(), rowmax.data(), sumexp.data(), targets.data(), R.data(), M, V, 0);
  expect_grad(logits, dl, loss, "dlogits");
}

TEST(KernelGradcheck, EmbeddingsVocabParallel) {
  const int B = 2, T = 3, C = 4, V0 = 2, Vl = 5, P = 6;
  const std::vector<int32_t> ids = {2, 3, 9, 6, 2, 0};  // 9 and 0 fall outside the shard [2, 7)
  const std::vector<int32_t> types = {0, 0, 1, 0, 1, 1};
  Vec word = random_vec(Vl * C, 24), pos = random_vec(P * C, 25), type = random_vec(2 * C, 26);
  Vec R = random_vec(B * T * C, 27), out(B * T * C);
  auto loss = [&] {
    word_embedding_forward(out.data(), ids.data(), word.data(), B * T, C, V0, Vl);
    position_type_embedding_forward(out.data(), types.data(), pos.data(), type.data(), B, T, C);
    return dot(out, R);
  };
  Vec dword(Vl * C, 0.0), dpos(P * C, 0.0), dtype(2 * C, 0.0);
  word_embedding_backward(dword.data(), R.data(), ids.data(), B * T, C, V0, Vl);
  position_type_embedding_backward(dpos.data(), dtype.data(), R.data(), types.data(), B, T, C, 2);
  expect_grad(word, dword, loss, "dword");
  expect_grad(pos, dpos, loss, "dpos");
  expect_grad(type, dtype, loss, "dtype");
}

TEST(KernelGradcheck, GatherScatterAreAdjoint) {
  const int N = 6, C = 3, M = 3;
  const std::vector<int32_t> idx = {4, 0, 2};
  Vec x = random_vec(N * C, 28), R = random_vec(M * C, 29), out(M * C);
  auto loss = [&] {
    gather_rows(out.data(), x.data(), idx.data(), M, C);
    return dot(out, R);
  };
  Vec dx(N * C, 0.0);
  scatter_add_rows(dx.data(), R.data(), idx.data(), M, C);
  expect_grad(x, dx, loss, "dinp");
}

}  // namespace
}  // namespace erlangshen::cpu
