#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cli_args.h"
#include "longnet/kernels/thread_pool.h"
#include "longnet/model/layers.h"
#include "longnet/model/memory_pool.h"
#include "longnet/model/model.h"

namespace longnet::cli {

// What every longnet-run command works with: the model (from --model, else the embedded demo model), the
// threads (--threads, else LONGNET_THREADS, else all cores) and one memory pool.
struct Runtime {
  std::unique_ptr<model::MemoryPool> memory;
  std::unique_ptr<kernels::ThreadPool> threads;
  std::unique_ptr<model::LongNetModel> model;

  model::ExecContext context() const { return {threads.get(), memory.get()}; }
};

absl::StatusOr<Runtime> open_runtime(const Args& args);

// Flags every command accepts besides its own.
inline const char* const kCommonFlags[] = {"model", "threads"};

// Reads a whole file; errors name the path.
absl::StatusOr<std::string> read_file(const std::filesystem::path& path);

// Tokens per forward() call when a command runs a long sequence through the decoder: it bounds the
// activations of a prefill to this many rows.
inline constexpr int64_t kPrefillChunk = 2048;

}  // namespace longnet::cli
