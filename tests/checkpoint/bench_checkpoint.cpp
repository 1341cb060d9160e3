// Checkpoint throughput (not a test): writes and reads a checkpoint of a config's model (fp32 weights + AdamW
// moments, as pretrain saves them) and times resume start-up.
//   erlangshen_bench_checkpoint --config configs/bert-base.yaml --dir /tmp/ckpt-bench [--repeats 3]
// write: the trainer's save path (files fsynced, manifest, COMPLETE, rename, latest), GB/s of bytes written;
// read (cached): load weights + moments right after writing; read (cold): after dropping the files from the
// page cache (posix_fadvise DONTNEED); resume: restore_pretrain_checkpoint into a PretrainTrainer.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/pretrain_checkpoint.h"
#include "checkpoint/reader.h"
#include "runtime/threading.h"
#include "runtime/timer.h"

using namespace erlangshen;
namespace fs = std::filesystem;

static void drop_cache(const std::string& folder) {
  for (const auto& e : fs::directory_iterator(folder)) {
    const int fd = ::open(e.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

int main(int argc, char** argv) {
  CLI::App app{"checkpoint write/read throughput"};
  std::string config_path, dir = "/tmp/erlangshen-ckpt-bench";
  int repeats = 3;
  app.add_option("--config", config_path)->required();
  app.add_option("--dir", dir);
  app.add_option("--repeats", repeats);
  CLI11_PARSE(app, argc, argv);
  Config config = load_config(config_path, {"checkpoint.dir=" + dir, "checkpoint.keep=1", "train.micro_batch=1",
                                            "train.seq_len=16"});
  set_compute_threads(config.train.threads);
  fs::remove_all(dir);
  Logger quiet(1, 2);  // not rank 0: no log lines
  SelfCommunicator tp("tp"), dp("dp");
  SyntheticDataSource data(1, 1, 16, config.model.vocab_size, 0.15, config.train.seed, 0);
  Stopwatch init;
  PretrainTrainer trainer(config, TrainerGroups{&tp, &dp}, data, quiet);
  std::printf("model: %s, %zu parameters (init %.1f s)\n", config_path.c_str(), trainer.model().num_params(), init.seconds());
  auto& opt = trainer.optimizer();
  float* m0 = opt.exp_avg().data();
  float* v0 = opt.exp_avg_sq().data();
  for (size_t i = 0; i < opt.exp_avg().size(); ++i) m0[i] = 1e-3f * static_cast<float>(i % 977), v0[i] = 1e-6f;
  const double bytes = 3.0 * trainer.model().num_params() * sizeof(float);

  std::vector<double> w, rc, rcold, res;
  for (int r = 0; r < repeats; ++r) {
    trainer.set_step(100 + r);
    Stopwatch sw;
    const std::string folder = ckpt::save_pretrain_checkpoint(trainer, config, TrainerGroups{&tp, &dp}, quiet);
    w.push_back(sw.seconds());
    {
      ckpt::CheckpointReader reader(folder);
      std::vector<float> p(trainer.model().num_params()), m(p.size()), v(p.size());
      sw.reset();
      reader.load_params(trainer.model().table(), p.data());
      reader.load_optimizer(trainer.model().table(), 0, p.size(), m.data(), v.data());
      rc.push_back(sw.seconds());
      drop_cache(folder);
      sw.reset();
      ckpt::CheckpointReader cold(folder);
      cold.load_params(trainer.model().table(), p.data());
      cold.load_optimizer(trainer.model().table(), 0, p.size(), m.data(), v.data());
      rcold.push_back(sw.seconds());
    }
    drop_cache(folder);
    sw.reset();
    ckpt::restore_pretrain_checkpoint(trainer, folder, config, TrainerGroups{&tp, &dp}, quiet);
    res.push_back(sw.seconds());
  }
  auto best = [](std::vector<double> v) { return *std::min_element(v.begin(), v.end()); };
  auto med = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
  std::printf("checkpoint size: %.2f GB (weights + exp_avg + exp_avg_sq, fp32)\n", bytes / 1e9);
  std::printf("write (fsync, publish): median %.2f s = %.2f GB/s (best %.2f GB/s)\n", med(w), bytes / med(w) / 1e9, bytes / best(w) / 1e9);
  std::printf("read, page cache warm:  median %.2f s = %.2f GB/s (best %.2f GB/s)\n", med(rc), bytes / med(rc) / 1e9, bytes / best(rc) / 1e9);
  std::printf("read, page cache cold:  median %.2f s = %.2f GB/s (best %.2f GB/s)\n", med(rcold), bytes / med(rcold) / 1e9, bytes / best(rcold) / 1e9);
  std::printf("resume start-up (cold: manifest, weights, moments, cursor): median %.2f s\n", med(res));
  fs::remove_all(dir);
  return 0;
}
