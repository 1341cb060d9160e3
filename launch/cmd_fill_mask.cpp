// `erlangshen fill-mask --checkpoint CKPT [--top-k K] [--json] "text with [MASK]" ...`: the MLM head's top-k
// tokens (probabilities over the real vocabulary) for every [MASK] of each text.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include "checkpoint/reader.h"
#include "data_pipeline/tokenizer.h"
#include "launch/commands.h"
#include "model/megatron_bert.h"
#include "runtime/check.h"
#include "runtime/threading.h"

namespace erlangshen::cli {
namespace {

// [CLS] pieces of `text` with "[MASK]" kept as the mask token [SEP], cut to `max_len`.
std::vector<int32_t> encode_with_masks(const data::BertTokenizer& tok, const std::string& text, int max_len) {
  const data::Vocab& v = tok.vocab();
  std::vector<int32_t> ids{v.cls_id()};
  size_t pos = 0;
  for (;;) {
    const size_t at = text.find("[MASK]", pos);
    const std::vector<int32_t> piece = tok.encode(text.substr(pos, at == std::string::npos ? std::string::npos : at - pos));
    ids.insert(ids.end(), piece.begin(), piece.end());
    if (at == std::string::npos) break;
    ids.push_back(v.mask_id());
    pos = at + 6;
  }
  if (static_cast<int>(ids.size()) > max_len - 1) ids.resize(static_cast<size_t>(max_len - 1));
  ids.push_back(v.sep_id());
  return ids;
}

}  // namespace

void register_fill_mask(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("fill-mask", "Top-k predictions of the MLM head for each [MASK] in a text");
  auto ckpt_path = std::make_shared<std::string>();
  auto vocab = std::make_shared<std::string>();
  auto texts = std::make_shared<std::vector<std::string>>();
  auto top_k = std::make_shared<int>(5);
  auto json_out = std::make_shared<bool>(false);
  auto uncased = std::make_shared<bool>(true);
  cmd->add_option("--checkpoint", *ckpt_path, "checkpoint directory (its latest), step folder")->required();
  cmd->add_option("--vocab", *vocab, "vocab.txt (default: the one stored in the checkpoint)");
  cmd->add_option("--top-k", *top_k, "predictions per mask")->check(CLI::PositiveNumber);
  cmd->add_option("--lowercase", *uncased, "lowercase + strip accents like the training data (default true)");
  cmd->add_flag("--json", *json_out, "one JSON object per text: tokens, and per mask the top-k ids, tokens, logits, probabilities");
  cmd->add_option("text", *texts, "text(s) containing [MASK]")->required();
  cmd->callback([=, &exit_code] {
    set_compute_threads(0);
    ckpt::CheckpointReader reader(*ckpt_path);
    const ckpt::Manifest& m = reader.manifest();
    if (m.heads != "pretraining") throw Error("fill-mask: " + reader.folder() + " has no MLM head (a " + m.heads + " checkpoint)");
    std::string vocab_path = *vocab;
    if (vocab_path.empty()) {
      if (m.vocab_file.empty()) throw Error("fill-mask: " + reader.folder() + " holds no vocab.txt; pass --vocab FILE");
      vocab_path = (std::filesystem::path(reader.folder()) / m.vocab_file).string();
    }
    const data::BertTokenizer tok = data::BertTokenizer::from_file(vocab_path, *uncased);
    if (tok.vocab().size() != m.model.vocab_size)
      throw Error("fill-mask: " + vocab_path + " has " + std::to_string(tok.vocab().size()) + " entries, the model " +
                  std::to_string(m.model.vocab_size));
    SelfCommunicator tp("tp");
    MegatronBert<float> model(m.model, ModelHeads::Pretraining, tp, 0.0, 0.0);
    reader.load_params(model.table(), model.params());
    const int V = m.model.vocab_size, Vp = model.vocab_local();
    for (const std::string& text : *texts) {
      const std::vector<int32_t> ids = encode_with_masks(tok, text, m.model.max_positions);
      const int T = static_cast<int>(ids.size());
      std::vector<int32_t> types(ids.size(), 0), positions;
      std::vector<uint8_t> valid(ids.size(), 1);
      for (int t = 0; t < T; ++t)
        if (ids[t] == tok.vocab().mask_id()) positions.push_back(t);
      if (positions.empty()) throw Error("fill-mask: no [MASK] in \"" + text + "\"");
      const int M = static_cast<int>(positions.size());
      model.reserve(1, T);
      std::vector<float> logits(static_cast<size_t>(M) * Vp);
      model.mlm_logits(EncoderInputs{1, T, ids.data(), types.data(), valid.data()}, positions.data(), M, logits.data());
      nlohmann::ordered_json out;
      out["text"] = text;
      std::vector<std::string> tokens;
      for (int32_t id : ids) tokens.push_back(tok.vocab().token(id));
      out["tokens"] = tokens;
      out["masks"] = nlohmann::ordered_json::array();
      if (!*json_out) std::printf("%s\n", text.c_str());
      for (int k = 0; k < M; ++k) {
        const float* l = logits.data() + static_cast<size_t>(k) * Vp;  // real vocabulary only: [0, V)
        const double mx = *std::max_element(l, l + V);
        double sum = 0;
        for (int i = 0; i < V; ++i) sum += std::exp(l[i] - mx);
        std::vector<int> order(V);
        std::iota(order.begin(), order.end(), 0);
        const int kk = std::min(*top_k, V);
        std::partial_sort(order.begin(), order.begin() + kk, order.end(), [l](int a, int b) { return l[a] > l[b]; });
        nlohmann::ordered_json mask = {{"position", positions[k]}, {"top", nlohmann::ordered_json::array()}};
        if (!*json_out) std::printf("  [MASK] at %d:\n", positions[k]);
        for (int i = 0; i < kk; ++i) {
          const int id = order[i];
          const double p = std::exp(l[id] - mx) / sum;
          mask["top"].push_back({{"id", id}, {"token", tok.vocab().token(id)}, {"logit", l[id]}, {"prob", p}});
          if (!*json_out) std::printf("    %-12s %.4f\n", tok.vocab().token(id).c_str(), p);
        }
        out["masks"].push_back(mask);
      }
      if (*json_out) std::printf("%s\n", out.dump().c_str());
    }
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
