#include "model/adamw.h"

#include <algorithm>

namespace erlangshen {

template <class T>
AdamW<T>::AdamW(const ParamTable& table, const TrainConfig& config, size_t begin, size_t end, const Exec& exec)
    : config_(config),
      begin_(begin),
      end_(end),
      m_(exec, end - begin, "AdamW exp_avg"),
      v_(exec, end - begin, "AdamW exp_avg_sq") {
  for (const auto& e : table.entries()) {
    const size_t b = std::max(begin, e.offset), en = std::min(end, e.offset + e.numel);
    if (b < en) ranges_.push_back({b, en, e.spec.weight_decay});
  }
}

template <class T>
void AdamW<T>::step(const Exec& exec, T* params, const T* grads, double lr, double grad_scale) {
  ++step_count_;
  for (const auto& r : ranges_) {
    const size_t local = r.begin - begin_;
    ops::adamw_update(exec, params + r.begin, grads + r.begin, m_.data() + local, v_.data() + local,
                      static_cast<int64_t>(r.end - r.begin), lr, config_.beta1, config_.beta2, config_.adam_eps,
                      r.decay ? config_.weight_decay : 0.0, step_count_, grad_scale);
  }
}

template <class T>
double grad_sq_sum_local(const Exec& exec, const ParamTable& table, const T* grads, size_t begin, size_t end) {
  double total = 0.0;
  for (const auto& e : table.entries()) {
    if (e.spec.split_axis < 0 && table.tp_rank() != 0) continue;
    const size_t b = std::max(begin, e.offset), en = std::min(end, e.offset + e.numel);
    if (b < en) total += ops::sum_squares(exec, grads + b, static_cast<int64_t>(en - b));
  }
  return total;
}

template class AdamW<float>;
template class AdamW<double>;
template double grad_sq_sum_local<float>(const Exec&, const ParamTable&, const float*, size_t, size_t);
template double grad_sq_sum_local<double>(const Exec&, const ParamTable&, const double*, size_t, size_t);

}  // namespace erlangshen
