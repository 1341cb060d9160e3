// Activation recompute modes (train.recompute). Header-only: the CUDA memory planner uses it without the config
// loader.
//   None       keeps every tensor the backward pass reads.
//   Selective  keeps one attention-probability block (B, NH, T, T) for all layers and recomputes a layer's attention
//              forward just before its backward (Megatron's selective recompute: the biggest tensors, the
//              cheapest FLOPs).
//   Full       keeps only each layer's input and reruns the whole layer forward before its backward (one layer's
//              activations live at a time).
// Dropout bits are keyed by global coordinates (DESIGN §2), so recomputed tensors equal the originals bit for bit.
#pragma once
#include <string>

#include "runtime/check.h"

namespace erlangshen {

enum class Recompute { None, Selective, Full };

// "none" | "selective" | "full"; throws Error otherwise
inline Recompute parse_recompute(const std::string& name) {
  if (name == "none") return Recompute::None;
  if (name == "selective") return Recompute::Selective;
  if (name == "full") return Recompute::Full;
  throw Error("unknown recompute mode '" + name + "' (expected none, selective or full)");
}

inline const char* recompute_name(Recompute r) {
  switch (r) {
    case Recompute::None: return "none";
    case Recompute::Selective: return "selective";
    case Recompute::Full: return "full";
  }
  return "?";
}

}  // namespace erlangshen
