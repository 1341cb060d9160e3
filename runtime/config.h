// Run configuration: one struct per YAML section (DESIGN §9), loaded strictly.
//
// Loading rules: every key in the file must be known, of the right type and in range, or the load fails with
// an error naming the file and the dotted key. Overrides `key.sub=value` are applied after the file, with
// the same checks. Cross-field rules (heads divide hidden, ...) are checked by validate() before anything is
// allocated.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/recompute.h"

namespace erlangshen {

enum class Activation { GeluTanh, GeluExact };
const char* activation_name(Activation a);


struct ModelConfig {
  int hidden = 256;
  int layers = 4;
  int heads = 4;
  int ffn = 1024;
  int vocab_size = 21128;       // real vocabulary entries
  int vocab_pad_multiple = 128; // embedding rows are padded to a multiple of this x TP
  int max_positions = 512;
  int type_vocab = 2;
  Activation activation = Activation::GeluTanh;
  double layernorm_eps = 1e-12;
  double init_std = 0.02;
  bool scaled_output_init = true;  // output projections use std / sqrt(2 * layers) (GPT-2 / Megatron)
  int num_classes = 3;             // fine-tuning classifier width
  // Rows of the word embedding: vocab_size rounded up to a multiple of vocab_pad_multiple * tp.
  int padded_vocab(int tp = 1) const;
  int head_dim() const { return hidden / heads; }
};

struct TrainConfig {
  int64_t steps = 300;
  int micro_batch = 16;
  int grad_accum = 1;
  int seq_len = 128;
  double lr = 1e-3;
  double min_lr = 0.0;
  int64_t warmup_steps = 30;
  std::string decay = "linear";  // linear | cosine | constant
  double weight_decay = 0.01;
  double clip_grad = 1.0;        // 0 disables clipping
  double beta1 = 0.9;
  double beta2 = 0.999;
  double adam_eps = 1e-8;
  uint64_t seed = 1234;
  double dropout = 0.1;          // hidden + embedding dropout
  double attention_dropout = 0.1;
  int64_t stop_at = 0;           // 0: run to `steps`; N: stop after step N (schedule unchanged)
  int threads = 0;               // 0: all cores
  std::string device = "cpu";    // cpu | cuda: where the training step runs (cuda: one GPU per rank)
  std::string recompute = "none";  // none | selective | full (see Recompute)
  bool deterministic = false;    // cuda: GEMM algorithms without atomic split-K, fixed per shape (bit-exact reruns)
  // cuda: the GeLU derivative and the bias gradients on the backward GEMMs' cuBLASLt epilogues (DGELU, BGRADB);
  // false: separate passes (the same sums; the GeLU gradient then rounded twice). A switch to measure them, and a way
  // out should a cuBLASLt version run them slower.
  bool backward_epilogues = true;
  // cuda, bf16 storage with the unfused attention: its forward in one kernel (runtime/cuda/attention_fused_forward.h:
  // S, softmax, dropout and the product with V in registers; S written once as the saved state) instead of two
  // GEMMs and a row kernel. The same saved state and backward; results within bf16 rounding. Off until timed.
  bool fused_attention_forward = false;
  // cuda, the same attention, T <= 128: its backward in one kernel per (sample, head)
  // (runtime/cuda/attention_fused_backward.h) instead of 4 NH small GEMMs and a row pass. Off until timed.
  bool fused_attention_backward = false;
  // cuda: the pretraining optimizer step runs on a second stream beside the next step's forward, layer by layer (the
  // forward waits for each layer's update before reading it; the same bits). false: after the backward, in line.
  bool overlap_optimizer = true;
  // fp32 | bf16: storage of the large activations and backward temporaries (runtime/act.h); math stays fp32.
  // bf16 halves their memory and traffic on CUDA; on the CPU it is emulated (slow; for tests).
  std::string activations = "fp32";
  // fp32 | bf16: storage of the residual stream and its gradient (the encoder's layer inputs and outputs,
  // model/activations.h [res]); bf16 rounds each residual sum and each addition into the gradient once (Megatron-LM's
  // default under bf16; fp32 is its --fp32-residual-connection) and halves the stream's memory and the LayerNorms'
  // traffic.
  std::string residual = "fp32";
  // unfused | flash: the attention implementation (runtime/attention_kernel.h); flash needs train.device=cuda.
  std::string attention = "unfused";
  int epochs = 3;                // fine-tuning
  int64_t eval_every = 0;        // fine-tuning: evaluate every N steps (0: each epoch)
  int early_stop = 0;            // fine-tuning: stop after N evaluations without improvement (0: never)
};

struct ParallelConfig {
  int tp = 1;
  int dp = 1;
  bool zero1 = false;
  double timeout_s = 300.0;  // a collective that takes longer aborts the job
  int bucket_mb = 25;        // DP gradient bucket size
};

struct DataFieldsConfig {
  std::string a = "query";
  std::string b = "title";
  std::string label = "label";
  std::string id = "id";
};

struct DataConfig {
  std::vector<std::string> shards;  // pretraining: HDF5 shard files or directories
  std::string vocab;
  std::string dict;
  std::vector<std::string> lexicons;
  double mask_prob = 0.15;
  double knowledge_share = 0.5;
  std::string masking = "kdm";      // kdm | wwm | token
  double short_seq_prob = 0.1;
  int max_ngram = 3;
  bool one_sentence_docs = true;    // false: skip documents of a single sentence (no SOP pair across sentences)
  int loader_threads = 1;
  bool lowercase = true;
  // fine-tuning
  std::string train;
  std::string dev;
  std::string test;
  int num_classes = 3;
  int max_len = 128;
  bool skip_bad_lines = false;
  std::vector<std::string> labels;  // fine-tuning: class names (index = class); empty: integers 0..num_classes-1
  DataFieldsConfig fields;
};

struct CheckpointConfig {
  std::string dir;
  int64_t every = 0;  // 0: only at the end
  int keep = 3;
  std::string init;   // fine-tuning: checkpoint to start from (empty: random init)
};

struct LogConfig {
  std::string metrics;  // JSON-lines file (rank 0)
  int64_t every = 1;
};

struct LossConfig {
  std::string type = "ce";  // ce | label_smoothing | pcl | pcl_reference
  double eps = 0.1;
  double alpha = 0.0;
  double lam_plus = 0.0;
  double lam_minus = 0.0;
  std::vector<double> propensities;  // empty: training-label frequencies
};

struct Config {
  ModelConfig model;
  TrainConfig train;
  ParallelConfig parallel;
  DataConfig data;
  CheckpointConfig checkpoint;
  LogConfig log;
  LossConfig loss;
  std::string source = "<defaults>";  // file the config came from (for messages)

  // Cross-field checks; throws Error naming the keys and the file.
  void validate() const;
};

// Loads a YAML file strictly over the defaults; throws Error naming the file and key.
Config load_config(const std::string& path);
// Applies "key.sub=value" overrides (YAML scalar/list syntax for the value).
void apply_overrides(Config& config, const std::vector<std::string>& overrides);
// Loads `path` (or defaults when empty), applies overrides, validates.
Config load_config(const std::string& path, const std::vector<std::string>& overrides);
// Every known key with its current value, one `key: value` line each (for --print-config and manifests).
std::string dump_config(const Config& config);
// Names of all known keys (sorted), for documentation and tests.
std::vector<std::string> config_keys();

}  // namespace erlangshen
