// A tensor that can be stored in T (float / double) or in bf16: the activations the model saves between forward
// and backward, and the large backward temporaries, when train.activations=bf16 (DESIGN §2 numerics; README "bf16
// activations"). Exactly one pointer is set; which one is decided once per model when the arena is planned.
//
// Semantics of an op on bf16 storage (the same on every backend, so the CPU backend is the reference for the
// CUDA one): bf16 inputs are read exactly (bf16 -> fp32 is exact); the op computes in fp32 as for fp32 storage;
// each bf16 output is rounded once (round to nearest even). A GEMM with a bf16 activation operand also takes its
// weight rounded to bf16: the product of two bf16 values is exact in fp32, so every backend forms the same
// products and differs only in the order of the fp32 sums.
#pragma once
#include <string>
#include <type_traits>

#include "runtime/bf16.h"
#include "runtime/check.h"

namespace erlangshen {

// train.activations: where a model stores its Act tensors.
enum class ActivationStorage { FP32, BF16 };

// "fp32" | "bf16"; throws Error otherwise
inline ActivationStorage parse_activation_storage(const std::string& name) {
  if (name == "fp32") return ActivationStorage::FP32;
  if (name == "bf16") return ActivationStorage::BF16;
  throw Error("unknown activation storage '" + name + "' (expected fp32 or bf16)");
}
inline const char* activation_storage_name(ActivationStorage s) {
  return s == ActivationStorage::BF16 ? "bf16" : "fp32";
}

template <class T>
struct Act {
  using Half = std::conditional_t<std::is_const_v<T>, const bf16, bf16>;
  T* f = nullptr;     // T storage, or
  Half* h = nullptr;  // bf16 storage

  Act() = default;
  Act(T* p) : f(p) {}  // NOLINT(google-explicit-constructor): a plain T tensor is an Act
  static Act half(Half* p) {
    Act a;
    a.h = p;
    return a;
  }
  // Act<float> -> Act<const float>
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  Act(const Act<U>& o) : f(o.f), h(o.h) {}  // NOLINT(google-explicit-constructor)

  bool is_bf16() const { return h != nullptr; }
  bool empty() const { return f == nullptr && h == nullptr; }
};

// T of a parameter that must not take part in template argument deduction (C++20's std::type_identity_t).
template <class T>
struct no_deduce {
  using type = T;
};
template <class T>
using no_deduce_t = typename no_deduce<T>::type;

}  // namespace erlangshen
