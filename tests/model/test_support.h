// Helpers shared by the model tests: small configs and a fixed-batch data source.
#pragma once
#include <cstdlib>
#include <string>
#include <sys/stat.h>

#include "model/data_source.h"
#include "runtime/config.h"

namespace erlangshen::testing {

// A model small enough for finite differences and fast reference runs.
inline Config small_config(int hidden = 64, int layers = 2, int heads = 4, int ffn = 256, int vocab = 500) {
  Config c;
  c.model.hidden = hidden;
  c.model.layers = layers;
  c.model.heads = heads;
  c.model.ffn = ffn;
  c.model.vocab_size = vocab;
  c.model.vocab_pad_multiple = 128;
  c.model.max_positions = 64;
  c.train.micro_batch = 4;
  c.train.seq_len = 32;
  c.train.steps = 10;
  c.train.warmup_steps = 3;
  c.train.lr = 3e-3;
  c.train.dropout = 0.0;
  c.train.attention_dropout = 0.0;
  return c;
}

// Returns the same micro-batches every step.
class FixedDataSource final : public PretrainDataSource {
 public:
  explicit FixedDataSource(std::vector<PretrainBatch> step) : step_(std::move(step)) {}
  std::vector<PretrainBatch> next_step() override { return step_; }
  nlohmann::json cursor() const override { return nlohmann::json::object(); }
  void restore(const nlohmann::json&) override {}
  std::string describe() const override { return "fixed"; }

 private:
  std::vector<PretrainBatch> step_;
};

inline std::string make_temp_dir(const std::string& stem) {
  std::string tmpl = "/tmp/" + stem + "-XXXXXX";
  char* d = mkdtemp(tmpl.data());
  return d ? std::string(d) : std::string();
}

inline bool python_has(const std::string& module) {
  std::string cmd = std::string(ERLANGSHEN_PYTHON) + " -c 'import " + module + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace erlangshen::testing
