#include "runtime.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "longnet/model/default_model.h"

namespace longnet::cli {

absl::StatusOr<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<Runtime> open_runtime(const Args& args) {
  absl::StatusOr<int64_t> threads = args.get_int("threads", 0);
  if (!threads.ok()) return threads.status();
  if (*threads < 0) return absl::InvalidArgumentError(absl::StrCat("--threads must be >= 0, got ", *threads));
  std::filesystem::path dir;
  if (args.has("model")) {
    dir = args.get("model", "");
  } else {
    absl::StatusOr<std::filesystem::path> demo = model::find_demo_model();
    if (!demo.ok()) return demo.status();
    dir = *demo;
  }
  Runtime rt;
  rt.memory = std::make_unique<model::MemoryPool>();
  rt.threads = std::make_unique<kernels::ThreadPool>(static_cast<int>(*threads));
  absl::StatusOr<std::unique_ptr<model::LongNetModel>> m = model::LongNetModel::load(dir, *rt.memory);
  if (!m.ok()) return m.status();
  rt.model = *std::move(m);
  return rt;
}

}  // namespace longnet::cli
