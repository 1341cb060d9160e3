// Preprocess benchmark: `erlangshen preprocess` work (sentence split, jieba-compatible segmentation, BERT
// tokenization, lexicon spans, HDF5 shards) on one thread, against the Python path (python3-jieba HMM=False +
// the reference WordPiece) on the same input. Prints medians and the ratio.
//
//   bench_preprocess [--runs N] [--python-runs N] [--lexicons] INPUT...
// Needs ../shared/data (vocab and jieba dictionary).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "data_pipeline/preprocess.h"
#include "runtime/timer.h"

using namespace erlangshen;
using namespace erlangshen::data;

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}
double child_cpu() {
  rusage u{};
  getrusage(RUSAGE_CHILDREN, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}
}  // namespace

int main(int argc, char** argv) {
  int runs = 5, py_runs = 1;
  bool lexicons = false;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs") runs = std::atoi(argv[++i]);
    else if (a == "--python-runs") py_runs = std::atoi(argv[++i]);
    else if (a == "--lexicons") lexicons = true;
    else inputs.push_back(a);
  }
  const std::string shared = ERLANGSHEN_SHARED_DIR;
  if (inputs.empty()) inputs = {shared + "/data/corpus/zhwiki_sample.txt", shared + "/data/corpus/classics_xiyouji.txt",
                                shared + "/data/corpus/fewclue_iflytek_texts.txt"};
  TextPipelineOptions t;
  t.vocab = shared + "/data/vocab/vocab.txt";
  t.dict = shared + "/data/lexicon/jieba_dict.txt";
  t.pos_lexicon = true;
  if (lexicons) {
    t.lexicons = {shared + "/data/lexicon/thuocl/THUOCL_diming.txt", shared + "/data/lexicon/thuocl/THUOCL_lishimingren.txt",
                  shared + "/data/lexicon/company_short_names.txt"};
  }
  Stopwatch load;
  TextPipeline pipeline(t);
  std::printf("resources loaded in %.2f s\n", load.seconds());
  std::string out = std::string(ERLANGSHEN_BINARY_DIR) + "/bench_preprocess_out";
  std::vector<double> mbps, mb_per_cpu;
  int64_t bytes = 0;
  for (int r = 0; r < runs; ++r) {
    std::filesystem::remove_all(out);
    PreprocessOptions p;
    p.inputs = inputs;
    p.out_dir = out;
    p.threads = 1;
    p.progress = false;
    PreprocessReport rep = run_preprocess(pipeline, p);
    bytes = rep.input_bytes;
    mbps.push_back(rep.input_bytes / 1e6 / rep.wall_seconds);
    mb_per_cpu.push_back(rep.input_bytes / 1e6 / rep.cpu_seconds);
    std::printf("run %d: %.2f MB in %.2f s wall, %.2f s CPU: %.1f MB/s, %.1f MB per CPU-s (%lld tokens)\n", r,
                rep.input_bytes / 1e6, rep.wall_seconds, rep.cpu_seconds, mbps.back(), mb_per_cpu.back(),
                (long long)rep.stats.tokens);
  }
  std::filesystem::remove_all(out);
  std::printf("C++ preprocess (1 worker thread): median %.1f MB/s wall, %.1f MB per CPU-second\n", median(mbps),
              median(mb_per_cpu));

  std::vector<double> py;
  std::string files;
  for (auto& f : inputs) files += " " + f;
  for (int r = 0; r < py_runs; ++r) {
    std::string cmd = std::string(ERLANGSHEN_PYTHON) + " " + ERLANGSHEN_SOURCE_DIR + "/tests/bench/python_preprocess.py " +
                      t.vocab + " " + t.dict + files;
    double c0 = child_cpu();
    Stopwatch w;
    int rc = std::system(cmd.c_str());
    double wall = w.seconds(), cpu = child_cpu() - c0;
    if (rc != 0) {
      std::printf("python reference failed or is unavailable (rc %d); no ratio\n", rc);
      return 0;
    }
    py.push_back(bytes / 1e6 / cpu);
    std::printf("python run %d: %.1f s wall, %.1f s CPU: %.3f MB per CPU-s\n", r, wall, cpu, py.back());
  }
  double cpp = median(mb_per_cpu), pym = median(py);
  std::printf("RESULT preprocess: C++ %.1f MB/s per core, Python jieba+WordPiece %.3f MB/s per core, ratio %.0fx\n", cpp,
              pym, cpp / pym);
  return 0;
}
