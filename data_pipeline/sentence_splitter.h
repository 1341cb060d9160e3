// Splits a paragraph into sentences at Chinese and Western terminators (。！？!?… ．｡, and '.' followed by
// whitespace or the end), keeping closing quotes and brackets (”’」』）)】》〉"' ...) and trailing whitespace
// with the sentence they close. The end of the paragraph always ends a sentence; sentences that hold only
// whitespace are dropped.
#pragma once
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace erlangshen::data {

// Appends [begin, end) code-point ranges of the sentences of `text`.
void split_sentences(std::u32string_view text, std::vector<std::pair<uint32_t, uint32_t>>& out);

}  // namespace erlangshen::data
