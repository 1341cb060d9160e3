// Learning-rate schedule: linear warmup from 0 to train.lr over warmup_steps, then linear or cosine decay
// to train.min_lr at train.steps (or constant). Steps are 1-based: lr_at(1) is the first update's rate.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "runtime/config.h"

namespace erlangshen {

inline double lr_at(const TrainConfig& t, int64_t step) {
  if (t.warmup_steps > 0 && step <= t.warmup_steps) return t.lr * static_cast<double>(step) / t.warmup_steps;
  if (t.decay == "constant") return t.lr;
  const int64_t decay_steps = std::max<int64_t>(1, t.steps - t.warmup_steps);
  const double progress = std::clamp(static_cast<double>(step - t.warmup_steps) / decay_steps, 0.0, 1.0);
  const double factor = t.decay == "cosine" ? 0.5 * (1.0 + std::cos(3.141592653589793 * progress)) : 1.0 - progress;
  return t.min_lr + (t.lr - t.min_lr) * factor;
}

}  // namespace erlangshen
