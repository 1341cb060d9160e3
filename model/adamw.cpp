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
    if (b < en)
      spans_.push_back(FlatSpan{static_cast<int64_t>(b - begin), static_cast<int64_t>(en - b), e.spec.weight_decay});
  }
}

template <class T>
void AdamW<T>::step(const Exec& exec, T* params, const T* grads, double lr, double grad_scale, bf16* compute_copy) {
  ++step_count_;
  // Every array indexed from begin_ (the moments hold [begin_, end_) only): the spans are relative to it.
  ops::adamw_update_spans(exec, params + begin_, grads + begin_, m_.data(), v_.data(),
                          compute_copy ? compute_copy + begin_ : nullptr, spans_, lr, config_.beta1, config_.beta2,
                          config_.adam_eps, config_.weight_decay, step_count_, grad_scale);
}

template <class T>
void AdamW<T>::update_range(const Exec& exec, T* params, const T* grads, double lr, double grad_scale,
                            bf16* compute_copy, size_t range_begin, size_t range_end) {
  ERL_CHECK(step_count_ > 0, "AdamW::update_range before begin_step");
  const int64_t lo = static_cast<int64_t>(std::max(range_begin, begin_) - begin_);
  const int64_t hi = static_cast<int64_t>(std::min(range_end, end_)) - static_cast<int64_t>(begin_);
  std::vector<FlatSpan> part;
  for (const FlatSpan& s : spans_) {
    const int64_t b = std::max(s.offset, lo), e = std::min(s.offset + s.n, hi);
    if (b < e) part.push_back(FlatSpan{b, e - b, s.decay});
  }
  if (part.empty()) return;
  ops::adamw_update_spans(exec, params + begin_, grads + begin_, m_.data(), v_.data(),
                          compute_copy ? compute_copy + begin_ : nullptr, part, lr, config_.beta1, config_.beta2,
                          config_.adam_eps, config_.weight_decay, step_count_, grad_scale);
}

namespace {

// The parts in [begin, end) of the tensors whose squared gradients this rank contributes to the global norm: sharded
// tensors always, replicated ones on TP rank 0 only; in table order, absolute offsets.
std::vector<FlatSpan> grad_norm_spans(const ParamTable& table, size_t begin, size_t end) {
  std::vector<FlatSpan> spans;
  for (const auto& e : table.entries()) {
    if (e.spec.split_axis < 0 && table.tp_rank() != 0) continue;
    const size_t b = std::max(begin, e.offset), en = std::min(end, e.offset + e.numel);
    if (b < en) spans.push_back(FlatSpan{static_cast<int64_t>(b), static_cast<int64_t>(en - b), false});
  }
  return spans;
}

}  // namespace

template <class T>
double grad_sq_sum_local(const Exec& exec, const ParamTable& table, const T* grads, size_t begin, size_t end) {
  // Per-tensor sums added in table order (one host synchronisation on CUDA for all of them).
  double total = 0.0;
  for (double s : ops::sum_squares_spans(exec, grads, grad_norm_spans(table, begin, end))) total += s;
  return total;
}

template <class T>
GradSqSumBySegment<T>::GradSqSumBySegment(const ParamTable& table, const Exec& exec)
    : spans_(grad_norm_spans(table, 0, table.total())) {
  sums_ = Buffer<double>(exec, std::max<size_t>(spans_.size(), 1), "gradient norm sums");
  host_sums_.resize(spans_.size());
}

template <class T>
void GradSqSumBySegment<T>::begin() {
  added_ = 0;
}

template <class T>
void GradSqSumBySegment<T>::add(const Exec& exec, const T* grads, size_t b, size_t e) {
  // The spans inside [b, e): a contiguous run of the table-ordered list.
  auto first = std::lower_bound(spans_.begin(), spans_.end(), static_cast<int64_t>(b),
                                [](const FlatSpan& s, int64_t at) { return s.offset < at; });
  auto last = first;
  while (last != spans_.end() && static_cast<size_t>(last->offset + last->n) <= e) ++last;
  ERL_CHECK(last == spans_.end() || static_cast<size_t>(last->offset) >= e,
            "GradSqSumBySegment: segment [" << b << ", " << e << ") cuts a parameter tensor");
  if (first == last) return;
  ops::sum_squares_spans_into(exec, grads, std::vector<FlatSpan>(first, last), sums_.data() + (first - spans_.begin()));
  added_ += static_cast<size_t>(last - first);
}

template <class T>
double GradSqSumBySegment<T>::total(const Exec& exec) {
  ERL_CHECK(added_ == spans_.size(), "GradSqSumBySegment: " << added_ << " of " << spans_.size() << " tensors summed");
  if (spans_.empty()) return 0.0;
  copy_to_host(exec, host_sums_.data(), sums_.data(), spans_.size());
  double total = 0.0;
  for (double s : host_sums_) total += s;  // table order, as grad_sq_sum_local
  return total;
}

template class GradSqSumBySegment<float>;
template class GradSqSumBySegment<double>;
template class AdamW<float>;
template class AdamW<double>;
template double grad_sq_sum_local<float>(const Exec&, const ParamTable&, const float*, size_t, size_t);
template double grad_sq_sum_local<double>(const Exec&, const ParamTable&, const double*, size_t, size_t);

}  // namespace erlangshen
