// The tokens of a batch grouped by vocabulary row (compressed rows), for the word-embedding backward:
//   dword[row[r]] += sum over k in [start[r], start[r+1]) of dout[tokens[k]]      (r < rows, tokens in order)
// Only rows with at least one token are listed, in increasing row order; within a row the tokens keep their
// batch order, so each (row, column) gets the same float additions in the same order as a scan over the ids
// (cpu::word_embedding_backward): the same bits, with each row's work in one place instead of a scan of every id
// for every row. Built on the host, where the ids arrive (a counting sort, O(N + V_local)).
#pragma once
#include <cstdint>
#include <vector>

namespace erlangshen {

// A view of the index in the memory where the ops run (host on the CPU, device on CUDA).
struct TokenRows {
  int rows = 0;                    // rows with tokens
  const int32_t* row = nullptr;    // (rows) local vocabulary row
  const int32_t* start = nullptr;  // (rows + 1) offsets into tokens
  const int32_t* tokens = nullptr;  // (start[rows]) token indices n, ascending within a row
};

// The host index, rebuilt per batch into reused vectors (no allocation once they reached the batch's size).
class TokenRowsBuilder {
 public:
  // Tokens n < N whose id lies in this vocabulary shard [vocab_start, vocab_start + V_local).
  void build(const int32_t* ids, int N, int vocab_start, int V_local);
  TokenRows host_view() const { return TokenRows{rows(), row_.data(), start_.data(), tokens_.data()}; }
  int rows() const { return static_cast<int>(row_.size()); }
  const std::vector<int32_t>& row() const { return row_; }
  const std::vector<int32_t>& start() const { return start_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  std::vector<int32_t> count_, row_, start_, tokens_;
};

}  // namespace erlangshen
