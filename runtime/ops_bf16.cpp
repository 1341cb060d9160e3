// bf16 storage ops: CUDA dispatch, and the CPU emulation that defines their results (runtime/act.h).
// The emulation widens every input to an fp32 vector (bf16 -> fp32 is exact), rounds every GEMM operand to bf16
// when the op touches bf16 storage (as the CUDA backend's bf16 math does), runs the fp32 CPU kernel, and rounds
// each bf16 output once. It is meant for tests and small runs: it copies every tensor it touches.
#include "runtime/ops_bf16.h"

#include <algorithm>
#include <vector>

#include "runtime/check.h"
#include "runtime/cpu/kernels.h"
#if defined(ERLANGSHEN_HAVE_CUDA)
#include "runtime/cuda/kernels.h"
#include "runtime/cuda/op_profiler.h"
#endif

namespace erlangshen::ops_bf16 {
namespace {

#if defined(ERLANGSHEN_HAVE_CUDA)
cuda::Launch launch(const Exec& x) { return cuda::Launch(x.stream, x.backend_context); }
#define ERL_BF16_CUDA(fn, ...)                                  \
  do {                                                          \
    cuda::OpScope erl_op_scope_(x.backend_context, #fn "[bf16]"); \
    cuda::fn(launch(x), __VA_ARGS__);                           \
    return;                                                     \
  } while (0)
#else
#define ERL_BF16_CUDA(fn, ...) throw Error("this build has no CUDA backend (configure with -DERLANGSHEN_CUDA=ON)")
#endif

// a (n) as fp32 values: a copy of the fp32 storage, or the bf16 storage widened (exact).
std::vector<float> widen(Act<const float> a, size_t n) {
  std::vector<float> v(n);
  if (a.is_bf16())
    for (size_t i = 0; i < n; ++i) v[i] = to_float(a.h[i]);
  else
    for (size_t i = 0; i < n; ++i) v[i] = a.f[i];
  return v;
}

// a GEMM operand (n) as the bf16 values the GEMM multiplies, held in fp32.
std::vector<float> gemm_operand(Act<const float> a, size_t n) {
  std::vector<float> v = widen(a, n);
  if (!a.is_bf16())
    for (float& e : v) e = round_to_bf16(e);
  return v;
}

// The bias (n) of a GEMM whose output has `out`'s storage, as the epilogue adds it: fp32 as given, its bf16 values
// for a bf16 output (the CUDA backend's cuBLASLt epilogue reads a bias of the output's type). Empty for no bias.
std::vector<float> epilogue_bias(const float* b, size_t n, bool bf16_out) {
  if (b == nullptr) return {};
  std::vector<float> v(b, b + n);
  if (bf16_out)
    for (float& e : v) e = round_to_bf16(e);
  return v;
}

// dst (n) <- v: copied into fp32 storage, rounded once into bf16 storage.
void store(Act<float> dst, const std::vector<float>& v) {
  if (dst.is_bf16())
    for (size_t i = 0; i < v.size(); ++i) dst.h[i] = to_bf16(v[i]);
  else
    for (size_t i = 0; i < v.size(); ++i) dst.f[i] = v[i];
}

// db (C) += column sums of g (N, C) as stored, in row order (the CPU kernels' order).
void add_column_sums(float* db, Act<const float> g, int N, int C) {
  const std::vector<float> v = widen(g, static_cast<size_t>(N) * C);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) db[c] += v[static_cast<size_t>(n) * C + c];
}

}  // namespace

void copy_rounded_to_bf16(const Exec& x, bf16* dst, const float* src, int64_t n) {
  if (x.on_device()) ERL_BF16_CUDA(float_to_bf16, reinterpret_cast<uint16_t*>(dst), src, n);
  for (int64_t i = 0; i < n; ++i) dst[i] = to_bf16(src[i]);
}

void matmul_forward(const Exec& x, Act<float> out, Act<const float> inp, Act<const float> w, const float* b, int N,
                    int C, int OC, bool accumulate) {
  ERL_CHECK(!(accumulate && out.is_bf16()), "matmul_forward: accumulating into bf16 storage is not supported");
  if (x.on_device()) ERL_BF16_CUDA(matmul_forward, out, inp, w, b, N, C, OC, accumulate);
  const size_t NO = static_cast<size_t>(N) * OC;
  const std::vector<float> in = gemm_operand(inp, static_cast<size_t>(N) * C);
  const std::vector<float> wr = gemm_operand(w, static_cast<size_t>(OC) * C);
  std::vector<float> o = accumulate ? widen(Act<const float>(out.f), NO) : std::vector<float>(NO);
  const std::vector<float> bias = epilogue_bias(b, static_cast<size_t>(OC), out.is_bf16());
  cpu::matmul_forward<float>(o.data(), in.data(), wr.data(), b ? bias.data() : nullptr, N, C, OC, accumulate);
  store(out, o);
}

void matmul_bias_gelu_forward(const Exec& x, Act<float> act, Act<float> pre, Act<const float> inp, Act<const float> w,
                              const float* b, int N, int C, int OC, Activation kind) {
  ERL_CHECK(act.is_bf16() == pre.is_bf16(), "matmul_bias_gelu_forward: act and pre must have the same storage");
  if (x.on_device()) {
    ERL_CHECK(b != nullptr, "matmul_bias_gelu_forward: bf16 storage on CUDA needs the bias");
    ERL_BF16_CUDA(matmul_bias_gelu_forward, act, pre, inp, w, b, N, C, OC, kind);
  }
  const size_t NO = static_cast<size_t>(N) * OC;
  const std::vector<float> in = gemm_operand(inp, static_cast<size_t>(N) * C);
  const std::vector<float> wr = gemm_operand(w, static_cast<size_t>(OC) * C);
  std::vector<float> p(NO), a(NO);
  cpu::matmul_forward<float>(p.data(), in.data(), wr.data(), nullptr, N, C, OC, false);
  const std::vector<float> bias = epilogue_bias(b, static_cast<size_t>(OC), act.is_bf16());
  cpu::bias_gelu_forward<float>(a.data(), p.data(), b ? bias.data() : nullptr, N, OC, kind);
  store(pre, p);
  store(act, a);
}

void matmul_backward(const Exec& x, Act<float> dinp, float* dw, float* db, Act<const float> dout, Act<const float> inp,
                     Act<const float> w, int N, int C, int OC, bool accumulate_dinp, bool accumulate_dw) {
  ERL_CHECK(!(accumulate_dinp && dinp.is_bf16()), "matmul_backward: accumulating into bf16 storage is not supported");
  if (x.on_device())
    ERL_BF16_CUDA(matmul_backward, dinp, dw, db, dout, inp, w, N, C, OC, accumulate_dinp, accumulate_dw);
  if (dw && !accumulate_dw) std::fill(dw, dw + static_cast<size_t>(OC) * C, 0.0f);  // the CPU kernel adds
  const size_t NC = static_cast<size_t>(N) * C;
  const std::vector<float> d = gemm_operand(dout, static_cast<size_t>(N) * OC);
  if (!dinp.empty()) {
    const std::vector<float> wr = gemm_operand(w, static_cast<size_t>(OC) * C);
    std::vector<float> di = accumulate_dinp ? widen(Act<const float>(dinp.f), NC) : std::vector<float>(NC);
    cpu::matmul_backward<float>(di.data(), nullptr, nullptr, d.data(), nullptr, wr.data(), N, C, OC, accumulate_dinp);
    store(dinp, di);
  }
  if (dw) {
    const std::vector<float> in = gemm_operand(inp, NC);
    cpu::matmul_backward<float>(nullptr, dw, nullptr, d.data(), in.data(), nullptr, N, C, OC, false);
  }
  if (db) add_column_sums(db, dout, N, OC);
}

void layernorm_forward(const Exec& x, Act<float> out, float* mean, float* rstd, Act<const float> inp, const float* w,
                       const float* b, int N, int C, double eps) {
  if (x.on_device()) ERL_BF16_CUDA(layernorm_forward, out, mean, rstd, inp, w, b, N, C, eps);
  const size_t NC = static_cast<size_t>(N) * C;
  const std::vector<float> in = widen(inp, NC);
  std::vector<float> o(NC);
  cpu::layernorm_forward<float>(o.data(), mean, rstd, in.data(), w, b, N, C, eps);
  store(out, o);
}

void layernorm_backward(const Exec& x, Act<float> dinp, float* dw, float* db, Act<const float> dout,
                        Act<const float> inp, const float* w, const float* mean, const float* rstd, int N, int C) {
  if (x.on_device()) ERL_BF16_CUDA(layernorm_backward, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  const size_t NC = static_cast<size_t>(N) * C;
  const std::vector<float> dy = widen(dout, NC), in = widen(inp, NC);
  std::vector<float> di = widen(Act<const float>(dinp), NC);
  cpu::layernorm_backward<float>(di.data(), dw, db, dy.data(), in.data(), w, mean, rstd, N, C);
  store(dinp, di);
}

void bias_gelu_backward(const Exec& x, Act<float> dpre, float* db, Act<const float> dact, Act<const float> pre, int N,
                        int C, Activation kind) {
  if (x.on_device()) ERL_BF16_CUDA(bias_gelu_backward, dpre, db, dact, pre, N, C, kind);
  const size_t NC = static_cast<size_t>(N) * C;
  const std::vector<float> da = widen(dact, NC), p = widen(pre, NC);
  std::vector<float> dp(NC);
  cpu::bias_gelu_backward<float>(dp.data(), nullptr, da.data(), p.data(), N, C, kind);
  store(dpre, dp);
  if (db) add_column_sums(db, Act<const float>(dpre), N, C);
}

void matmul_gelu_backward(const Exec& x, Act<float> dpre, float* dw, float* db, float* dbias_pre, Act<const float> dout,
                          Act<const float> act, Act<const float> w, Act<const float> pre, int N, int C, int OC,
                          Activation kind, bool accumulate_dw) {
  if (x.on_device())
    ERL_BF16_CUDA(matmul_gelu_backward, dpre, dw, db, dbias_pre, dout, act, w, pre, N, C, OC, kind, accumulate_dw);
  std::vector<float> dact(static_cast<size_t>(N) * C);  // the product, unrounded
  matmul_backward(x, Act<float>(dact.data()), dw, db, dout, act, w, N, C, OC, false, accumulate_dw);
  bias_gelu_backward(x, dpre, dbias_pre, Act<const float>(dact.data()), pre, N, C, kind);
}

void dropout_residual_forward(const Exec& x, Act<float> out, Act<const float> resid, Act<const float> in, int64_t n,
                              const DropoutSpec& d, int64_t offset) {
  ERL_CHECK(resid.empty() || resid.is_bf16() == out.is_bf16(),
            "dropout_residual_forward: resid and out are the residual stream: one storage for both");
  if (x.on_device()) ERL_BF16_CUDA(dropout_residual_forward, out, resid, in, n, d, offset);
  const std::vector<float> v = widen(in, static_cast<size_t>(n));
  const std::vector<float> r = resid.empty() ? std::vector<float>() : widen(resid, static_cast<size_t>(n));
  std::vector<float> o(static_cast<size_t>(n));
  cpu::dropout_residual_forward<float>(o.data(), resid.empty() ? nullptr : r.data(), v.data(), n, d, offset);
  store(out, o);
}

void dropout_backward(const Exec& x, Act<float> dx, Act<const float> dout, int64_t n, const DropoutSpec& d,
                      int64_t offset) {
  if (x.on_device()) ERL_BF16_CUDA(dropout_backward, dx, dout, n, d, offset);
  const std::vector<float> g = widen(dout, static_cast<size_t>(n));
  std::vector<float> v(static_cast<size_t>(n));
  cpu::dropout_backward<float>(v.data(), g.data(), n, d, offset);
  store(dx, v);
}

void zero(const Exec& x, Act<float> a, int64_t n) {
  if (x.on_device()) ERL_BF16_CUDA(zero, a, n);
  if (a.is_bf16()) std::fill(a.h, a.h + n, bf16{});
  else std::fill(a.f, a.f + n, 0.0f);
}

void attention_forward(const Exec& x, Act<float> out, Act<float> probs, float* scratch, Act<const float> qkv,
                       const uint8_t* valid, const cpu::AttentionShape& s, const DropoutSpec& d) {
  if (x.on_device()) ERL_BF16_CUDA(attention_forward, out, probs, scratch, qkv, valid, s, d);
  const size_t NC = static_cast<size_t>(s.B) * s.Tn * s.NH * s.HS;
  const size_t BNTT = static_cast<size_t>(s.B) * s.NH * s.Tn * s.Tn;
  const std::vector<float> q = widen(qkv, 3 * NC);
  std::vector<float> o(NC), p32(probs.is_bf16() ? BNTT : 0);
  float* p = probs.is_bf16() ? p32.data() : probs.f;
  cpu::attention_forward<float>(o.data(), p, scratch, q.data(), valid, s, d, probs.is_bf16());
  store(out, o);
  if (probs.is_bf16()) store(probs, p32);  // exact: the values are bf16 already
}

void attention_backward(const Exec& x, Act<float> dqkv, float* scratch, Act<const float> dout, Act<const float> qkv,
                        Act<const float> probs, const uint8_t* valid, const cpu::AttentionShape& s,
                        const DropoutSpec& d) {
  if (x.on_device()) ERL_BF16_CUDA(attention_backward, dqkv, scratch, dout, qkv, probs, valid, s, d);
  const size_t NC = static_cast<size_t>(s.B) * s.Tn * s.NH * s.HS;
  const size_t BNTT = static_cast<size_t>(s.B) * s.NH * s.Tn * s.Tn;
  const std::vector<float> q = widen(qkv, 3 * NC), dO = widen(dout, NC);
  const std::vector<float> p32 = probs.is_bf16() ? widen(probs, BNTT) : std::vector<float>();
  std::vector<float> dq(3 * NC);
  cpu::attention_backward<float>(dq.data(), scratch, dO.data(), q.data(), probs.is_bf16() ? p32.data() : probs.f,
                                 valid, s, d);
  store(dqkv, dq);
}

}  // namespace erlangshen::ops_bf16
