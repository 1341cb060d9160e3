#include "parallel/communicator.h"

#include "runtime/check.h"

namespace erlangshen {

size_t dtype_bytes(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
  }
  return 1;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::U8: return "uint8";
  }
  return "?";
}

const char* reduce_op_name(ReduceOp op) { return op == ReduceOp::Sum ? "sum" : "max"; }

std::vector<size_t> balanced_counts(size_t n, int p) {
  ERL_CHECK(p > 0, "balanced_counts: group size must be positive");
  std::vector<size_t> c(p, n / p);
  for (size_t r = 0; r < n % p; ++r) ++c[r];
  return c;
}

size_t piece_offset(const std::vector<size_t>& counts, int r) {
  size_t off = 0;
  for (int s = 0; s < r; ++s) off += counts[s];
  return off;
}

std::string Collective::describe() const {
  std::string what;
  switch (kind) {
    case CollectiveKind::AllReduce: what = std::string("all_reduce(") + reduce_op_name(op) + ")"; break;
    case CollectiveKind::ReduceScatter: what = std::string("reduce_scatter(") + reduce_op_name(op) + ")"; break;
    case CollectiveKind::AllGather: what = "all_gather"; break;
    case CollectiveKind::Broadcast: what = "broadcast(root " + std::to_string(root) + ")"; break;
    case CollectiveKind::Barrier: return "barrier";
  }
  return what + " of " + std::to_string(bytes()) + " bytes (" + std::to_string(count) + " x " + dtype_name(dtype) + ")";
}

void Communicator::check(const Collective& c) const {
  if (c.kind == CollectiveKind::ReduceScatter || c.kind == CollectiveKind::AllGather) {
    ERL_CHECK(static_cast<int>(c.counts.size()) == size(),
              c.describe() << " on group '" << name() << "': " << c.counts.size() << " pieces for " << size()
                           << " ranks");
  }
  if (c.kind == CollectiveKind::Broadcast)
    ERL_CHECK(c.root >= 0 && c.root < size(),
              c.describe() << " on group '" << name() << "': root out of range [0, " << size() << ")");
}

namespace {
struct CompletedRequest final : CommRequest {
  void wait() override {}
};
}  // namespace

CommHandle Communicator::start(const Collective& c) {
  run(c);
  return std::make_unique<CompletedRequest>();
}

}  // namespace erlangshen
