// `erlangshen qbqtc-split --data-dir DIR --out DIR [--prerelease] [--holdout 0.1] [--seed 1]`: the QBQTC data
// recipe for when the official 180k train set is unavailable (shared/data/README.md):
//   train pool = dev.json minus every (query, title) pair that also occurs in test_public.json
//                (+ prerelease/{train,dev,test_public}.json with --prerelease; their label field is `relevant`)
//   heldout    = --holdout of the pool's distinct pairs, drawn by --seed (model selection: data.dev)
//   train      = the rest (data.train); report on test_public.json (data.test)
// Writes OUT/train.json and OUT/heldout.json in the final-release format ({"id","query","title","label"}) and
// OUT/split.json with the counts.
#include <filesystem>
#include <fstream>
#include <memory>

#include "data_pipeline/pair_dataset.h"
#include "launch/commands.h"
#include "runtime/check.h"
#include "runtime/logging.h"

namespace erlangshen::cli {

namespace fs = std::filesystem;

void register_qbqtc_split(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("qbqtc-split", "Build QBQTC train/heldout files from dev.json (minus test_public pairs)");
  struct Args {
    std::string data_dir = "../shared/data/qbqtc", out = "out/qbqtc";
    bool prerelease = false;
    double holdout = 0.1;
    uint64_t seed = 1;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--data-dir", a->data_dir, "folder with dev.json, test_public.json [, prerelease/]")->capture_default_str();
  cmd->add_option("--out", a->out, "output folder")->capture_default_str();
  cmd->add_flag("--prerelease", a->prerelease, "add prerelease/{train,dev,test_public}.json to the training pool");
  cmd->add_option("--holdout", a->holdout, "share of distinct pairs held out for model selection")
      ->check(CLI::Range(0.0, 0.99))
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of the held-out draw")->capture_default_str();
  cmd->callback([a, &exit_code] {
    Logger log;
    data::PairReaderOptions opt;  // QBQTC final release: query / title / label "0".."2"
    const fs::path dir(a->data_dir);
    const data::PairFile dev = data::read_pair_file((dir / "dev.json").string(), opt);
    const data::PairFile test = data::read_pair_file((dir / "test_public.json").string(), opt);
    int64_t removed = 0;
    std::vector<data::PairExample> pool = data::remove_pairs(dev.examples, test.examples, &removed);
    nlohmann::ordered_json info = {{"source", a->data_dir},
                                   {"dev_pairs", dev.examples.size()},
                                   {"removed_test_public_overlap", removed}};
    if (a->prerelease) {
      data::PairReaderOptions pre = opt;
      pre.fields.label = "relevant";
      int64_t added = 0;
      for (const char* name : {"train.json", "dev.json", "test_public.json"}) {
        data::PairFile f = data::read_pair_file((dir / "prerelease" / name).string(), pre);
        int64_t overlap = 0;
        std::vector<data::PairExample> kept = data::remove_pairs(f.examples, test.examples, &overlap);
        for (auto& e : kept) e.id = "pre-" + std::string(name, std::string(name).find('.')) + "-" + e.id.dump();
        added += static_cast<int64_t>(kept.size());
        removed += overlap;
        pool.insert(pool.end(), kept.begin(), kept.end());
      }
      info["prerelease_pairs"] = added;
    }
    std::vector<data::PairExample> train, heldout;
    data::split_holdout(pool, a->holdout, a->seed, train, heldout);
    std::error_code ec;
    fs::create_directories(a->out, ec);
    if (ec) throw Error(a->out + ": cannot create: " + ec.message());
    const data::PairFields fields;
    data::write_pair_file((fs::path(a->out) / "train.json").string(), train, fields, {});
    data::write_pair_file((fs::path(a->out) / "heldout.json").string(), heldout, fields, {});
    auto counts = [](const std::vector<data::PairExample>& v) {
      std::vector<int64_t> c(3, 0);
      for (const auto& e : v) ++c.at(e.label);
      return c;
    };
    info["holdout"] = a->holdout;
    info["seed"] = a->seed;
    info["train"] = {{"pairs", train.size()}, {"labels", counts(train)}};
    info["heldout"] = {{"pairs", heldout.size()}, {"labels", counts(heldout)}};
    info["test_public"] = {{"pairs", test.examples.size()}, {"labels", counts(test.examples)}};
    std::ofstream((fs::path(a->out) / "split.json").string()) << info.dump(2) << "\n";
    log.info("qbqtc-split: " + info.dump());
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
