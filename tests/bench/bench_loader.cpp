// Loader benchmark: masked SOP samples per second per core at seq 512 (KDM masking), building on the calling
// thread (threads = 0) so one core does all the work: HDF5 hyperslab reads, sample building, masking, batching.
//
//   bench_loader [--runs N] [--steps N] [--seq N] [SHARD_DIR]
// Without SHARD_DIR it first preprocesses part of ../shared/data/corpus into build/bench_loader_shards.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "data_pipeline/preprocess.h"
#include "data_pipeline/pretrain_loader.h"
#include "runtime/timer.h"

using namespace erlangshen;
using namespace erlangshen::data;

namespace {
double cpu_now() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  int runs = 5, steps = 40, seq = 512;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs") runs = std::atoi(argv[++i]);
    else if (a == "--steps") steps = std::atoi(argv[++i]);
    else if (a == "--seq") seq = std::atoi(argv[++i]);
    else dir = a;
  }
  const std::string shared = ERLANGSHEN_SHARED_DIR;
  const std::string vocab = shared + "/data/vocab/vocab.txt";
  if (dir.empty()) {
    dir = std::string(ERLANGSHEN_BINARY_DIR) + "/bench_loader_shards";
    if (!std::filesystem::exists(dir)) {
      TextPipelineOptions t;
      t.vocab = vocab;
      t.dict = shared + "/data/lexicon/jieba_dict.txt";
      t.lexicons = {shared + "/data/lexicon/thuocl/THUOCL_diming.txt"};
      TextPipeline pipeline(t);
      PreprocessOptions p;
      p.inputs = {shared + "/data/corpus/zhwiki_sample.txt", shared + "/data/corpus/classics_shuihu_zhuan.txt"};
      p.out_dir = dir;
      p.shard_tokens = 500000;
      p.progress = false;
      run_preprocess(pipeline, p);
    }
  }
  LoaderOptions o;
  o.shards = {dir};
  o.vocab_path = vocab;
  o.seq_len = seq;
  o.micro_batch = 32;
  o.threads = 0;
  o.seed = 7;
  PretrainLoader loader(o);
  std::printf("%lld samples per epoch at seq %d\n", (long long)loader.samples_per_epoch(), seq);
  std::vector<double> per_core, wall_rate;
  int64_t tokens = 0;
  for (int r = 0; r < runs; ++r) {
    double c0 = cpu_now();
    Stopwatch w;
    int64_t samples = 0;
    for (int s = 0; s < steps; ++s) {
      for (auto& b : loader.next_step()) {
        samples += b.batch;
        for (uint8_t m : b.attention_mask) tokens += m;
      }
    }
    double cpu = cpu_now() - c0, wall = w.seconds();
    per_core.push_back(samples / cpu);
    wall_rate.push_back(samples / wall);
    std::printf("run %d: %lld samples, %.3f s CPU, %.3f s wall: %.0f samples/s per core\n", r, (long long)samples, cpu,
                wall, per_core.back());
  }
  std::printf("RESULT loader: median %.0f masked samples/s per core at seq %d (%.0f/s wall)\n", median(per_core), seq,
              median(wall_rate));
  return 0;
}
