#include "runtime/token_rows.h"

#include <algorithm>

namespace erlangshen {

void TokenRowsBuilder::build(const int32_t* ids, int N, int vocab_start, int V_local) {
  // count_[v]: tokens of local row v; then, for the listed rows, the next free slot of the row in tokens_.
  count_.assign(static_cast<size_t>(std::max(V_local, 0)), 0);
  auto local_row = [&](int n) { return static_cast<int64_t>(ids[n]) - vocab_start; };
  int in_shard = 0;
  for (int n = 0; n < N; ++n) {
    const int64_t v = local_row(n);
    if (v >= 0 && v < V_local) {
      ++count_[static_cast<size_t>(v)];
      ++in_shard;
    }
  }
  row_.clear();
  start_.clear();
  int offset = 0;
  for (int v = 0; v < V_local; ++v) {
    if (count_[static_cast<size_t>(v)] == 0) continue;
    row_.push_back(v);
    start_.push_back(offset);
    const int c = count_[static_cast<size_t>(v)];
    count_[static_cast<size_t>(v)] = offset;  // now the row's cursor
    offset += c;
  }
  start_.push_back(offset);
  tokens_.resize(static_cast<size_t>(in_shard));
  for (int n = 0; n < N; ++n) {
    const int64_t v = local_row(n);
    if (v >= 0 && v < V_local) tokens_[static_cast<size_t>(count_[static_cast<size_t>(v)]++)] = n;
  }
}

}  // namespace erlangshen
