// erlangshen_bench_comm --config FILE [key=value ...] [--dp 1,8,64] [--gpu-tflops 989] [--mfu 0.4]
//   [--act-bytes 2] [--grad-bytes 4] [--nvlink-gbs 360] [--net-gbs 50] [--measure]
//
// Prints the communication volume of one optimizer step per GPU under parallel.tp x DP, from the formula
// below, and the link bandwidth it needs; with --measure under mpirun it also times our MPI all-reduce on
// bucket-sized buffers (bus bandwidth, as nccl-tests define it).
//
// Per optimizer step, per GPU, with t = TP, d = DP, m = grad_accum micro-batches of b x s tokens, hidden h,
// L layers, M = mask_prob x b x s masked positions, P_t = parameters of one TP shard (from the param table),
// w_a / w_g bytes per activation / gradient element; a ring all-reduce of n bytes over k ranks sends
// 2 (k-1)/k n per rank, a reduce-scatter or all-gather (k-1)/k n:
//   TP  (critical path):  V_tp = m x 2 (t-1)/t x w_a x [(4L + 1) b s h + M h]
//         forward: 2 all-reduces per layer (attention out, FFN out) + the vocab-parallel embedding;
//         backward: 2 per layer (copy_to_tp of both LayerNorm outputs) + the MLM head input
//   DP  (overlapped with backward):  V_dp = 2 (d-1)/d x w_g x P_t   (all-reduce, or ZeRO-1 reduce-scatter +
//         all-gather: the same bytes)
//   step time per GPU T = 6-ish training FLOPs of the step / (t d) / (peak x MFU)    (model/flops.h)
//   required bandwidth:  B_tp >= V_tp / (0.1 T)  (TP traffic at most 10% of the step)
//                        B_dp >= V_dp / (2/3 T)  (DP traffic hidden behind backward = 2/3 of the step)
//   and the time the traffic takes at given link speeds: t_tp = V_tp / B_nvlink, t_dp = V_dp / B_net.
#include <CLI/CLI.hpp>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "model/flops.h"
#include "model/param_layout.h"
#include "parallel/mpi_communicator.h"
#include "runtime/timer.h"

namespace erlangshen {
namespace {

void print_formula(const Config& c, const std::vector<int>& dps, double gpu_tflops, double mfu, double wa, double wg,
                   double nvlink_gbs, double net_gbs) {
  const ModelConfig& m = c.model;
  const int t = c.parallel.tp;
  const double b = c.train.micro_batch, s = c.train.seq_len, h = m.hidden, L = m.layers, acc = c.train.grad_accum;
  const double M = c.data.mask_prob * b * s;
  const ParamTable table = build_param_table(m, ModelHeads::Pretraining, 0, t);
  const double Pt = static_cast<double>(table.total());
  const double tp_elems = acc * ((4 * L + 1) * b * s * h + M * h);
  const double V_tp = t > 1 ? 2.0 * (t - 1) / t * wa * tp_elems : 0.0;
  std::printf("model %s: hidden %d, layers %d, heads %d, ffn %d, padded vocab %d (tp %d)\n", c.source.c_str(), m.hidden,
              m.layers, m.heads, m.ffn, m.padded_vocab(t), t);
  std::printf("per DP rank and step: grad_accum %d x micro_batch %d x seq %d; P_t (one TP shard) = %.0f parameters\n",
              c.train.grad_accum, c.train.micro_batch, c.train.seq_len, Pt);
  std::printf("V_tp = m x 2(t-1)/t x w_a x [(4L+1) b s h + M h] = %.0f x 2x%d/%d x %.0f B x %.4g = %.3f GB per GPU per step\n",
              acc, t - 1, t, wa, tp_elems / acc, V_tp / 1e9);
  std::printf("V_dp = 2(d-1)/d x w_g x P_t  (ZeRO-1: (d-1)/d x (w_g + w_g) x P_t, the same bytes)\n");
  std::printf("T    = training FLOPs of the step per GPU / (%.0f TFLOP/s x MFU %.2f)\n\n", gpu_tflops, mfu);
  std::printf("t_tp = V_tp / %.0f GB/s (NVLink) = %.2f ms; t_dp = V_dp / %.0f GB/s (network per GPU)\n\n", nvlink_gbs,
              V_tp / (nvlink_gbs * 1e9) * 1e3, net_gbs);
  std::printf("%6s %7s %9s %9s %11s %11s %11s %10s\n", "dp", "GPUs", "V_dp GB", "T ms", "tok/s", "B_tp GB/s",
              "B_dp GB/s", "t_dp ms");
  for (int d : dps) {
    const double V_dp = d > 1 ? 2.0 * (d - 1) / d * wg * Pt : 0.0;
    const double tokens = b * s * acc;  // per DP rank
    const double flops = training_flops(m, c.train.seq_len, tokens, c.data.mask_prob * tokens, b * acc) / t;
    const double T = flops / (gpu_tflops * 1e12 * mfu);
    std::printf("%6d %7d %9.3f %9.2f %11.0f %11.1f %11.1f %10.2f\n", d, t * d, V_dp / 1e9, T * 1e3, tokens * d / T,
                V_tp / (0.1 * T) / 1e9, V_dp / (2.0 / 3.0 * T) / 1e9, V_dp / (net_gbs * 1e9) * 1e3);
  }
}

void measure(int repeats) {
  MpiSession session;
  MPI_Comm dup;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  MpiCommunicator world(session, dup, "world", 300);
  const int p = world.size();
  if (world.rank() == 0) std::printf("\nMPI all-reduce on this machine, %d ranks (median of %d):\n", p, repeats);
  for (size_t mb : {1, 4, 16, 64}) {
    std::vector<float> x(mb * (1u << 20) / sizeof(float), 1.0f);
    std::vector<double> t;
    for (int r = 0; r < repeats + 1; ++r) {
      world.barrier();
      Stopwatch sw;
      world.all_reduce(x.data(), x.size(), ReduceOp::Sum);
      if (r > 0) t.push_back(sw.seconds());
    }
    std::sort(t.begin(), t.end());
    const double med = t[t.size() / 2], bytes = x.size() * sizeof(float);
    if (world.rank() == 0)
      std::printf("  %4zu MB: %8.2f ms  algbw %6.2f GB/s  busbw %6.2f GB/s\n", mb, med * 1e3, bytes / med / 1e9,
                  bytes * 2.0 * (p - 1) / p / med / 1e9);
  }
}

}  // namespace
}  // namespace erlangshen

int main(int argc, char** argv) {
  using namespace erlangshen;
  CLI::App app{"Communication volume per step (formula) and measured MPI all-reduce bandwidth"};
  std::string config_path;
  std::vector<std::string> overrides;
  std::string dp_list = "1,2,8,32,128";
  double gpu_tflops = 989, mfu = 0.4, wa = 2, wg = 4, nvlink_gbs = 360, net_gbs = 50;
  bool do_measure = false;
  int repeats = 5;
  app.add_option("--config", config_path, "YAML config (configs/erlangshen-1.3b.yaml)");
  app.add_option("overrides", overrides, "key=value overrides (parallel.tp=8 ...)");
  app.add_option("--dp", dp_list, "comma-separated DP sizes");
  app.add_option("--gpu-tflops", gpu_tflops, "peak dense bf16 TFLOP/s of one GPU (H100 SXM: 989)");
  app.add_option("--mfu", mfu, "model-FLOPs utilisation assumed for the step time");
  app.add_option("--act-bytes", wa, "bytes per activation element in TP collectives (bf16: 2)");
  app.add_option("--grad-bytes", wg, "bytes per gradient element in DP collectives (fp32: 4)");
  app.add_option("--nvlink-gbs", nvlink_gbs, "TP link bus bandwidth per GPU (H100 NVLink, NCCL busbw: ~360)");
  app.add_option("--net-gbs", net_gbs, "DP network bandwidth per GPU (400 Gb/s InfiniBand: 50)");
  app.add_flag("--measure", do_measure, "also time MPI all-reduce on 1..64 MB (run under mpirun)");
  app.add_option("--repeats", repeats, "timed repeats for --measure");
  CLI11_PARSE(app, argc, argv);
  try {
    Config c = load_config(config_path, overrides);
    std::vector<int> dps;
    std::stringstream ss(dp_list);
    for (std::string item; std::getline(ss, item, ',');) dps.push_back(std::stoi(item));
    const bool root = !MpiSession::launched_by_mpi() || std::getenv("OMPI_COMM_WORLD_RANK") == nullptr ||
                      std::string(std::getenv("OMPI_COMM_WORLD_RANK")) == "0";
    if (root) print_formula(c, dps, gpu_tflops, mfu, wa, wg, nvlink_gbs, net_gbs);
    if (do_measure) measure(repeats);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "erlangshen_bench_comm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
