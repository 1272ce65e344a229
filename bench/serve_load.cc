// Load generator for a running longnet-server (bench/serve.sh starts the server and runs this). C++ with one
// thread per stream blocking in Read, so that the client takes little of the CPU it shares with the server
// (about 10% of one core for 32 streams; the row "load generator CPU" shows it).
//
//   longnet_serve_load --address HOST:PORT [--pid PID] [--max-new-tokens 128] [--streams 32]
//                      [--encode-sizes 8192,65536,1000000 | none]
//
// Measures, in one run: tokens/s of one GenerateStream; aggregate tokens/s of N concurrent GenerateStreams
// (each the best of 3 rounds, the two kinds interleaved: this kind of shared machine swings by tens of
// percent within a minute, and both sides of the ratio get the same treatment; same max_new_tokens, short
// prompts, temperature 1 with different seeds, ignore_eos so every stream has the same length); time to first
// token (median / p90); the load generator's own CPU time during the N streams; EncodeStream throughput for
// 8K, 64K and 1,000,000-token documents (--encode-sizes; "none" measures generation only); and the server's
// peak RSS (VmHWM of /proc/PID/status) at the end. Prints a table. Any failed call, any stream of other than
// max_new_tokens tokens, any wrong encode result ends the run with status 1 and a message naming it.
#include <sys/resource.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "serve_client.h"

namespace {

using longnet::bench::ServeClient;
using longnet::bench::StreamRun;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] =
    "usage: longnet_serve_load --address HOST:PORT [--pid PID] [--max-new-tokens 128] [--streams 32]\n"
    "                          [--encode-sizes 8192,65536,1000000 | none]\n";

struct Options {
  std::string address;
  int64_t pid = 0;  // the server's, for its VmHWM; 0: not reported
  int64_t max_new_tokens = 128;
  int64_t streams = 32;
  std::vector<int64_t> encode_sizes = {8192, 65536, 1000000};
};

// Status 1 for a failed run, 2 for a wrong command line.
[[noreturn]] void fail(const std::string& what, int status = 1) {
  std::fprintf(stderr, "serve_load: %s\n", what.c_str());
  std::exit(status);
}

void check(const absl::Status& status) {
  if (!status.ok()) fail(status.ToString());
}

int64_t positive_int(absl::string_view flag, absl::string_view value) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(value, &v) || v < 1) {
    fail(absl::StrFormat("%s wants a positive integer, not \"%s\"", flag, value), 2);
  }
  return v;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 == argc) fail(absl::StrFormat("%s needs a value\n%s", flag, kUsage), 2);
    const absl::string_view value = argv[++i];
    if (flag == "--address") {
      o.address = std::string(value);
    } else if (flag == "--pid") {
      o.pid = positive_int(flag, value);
    } else if (flag == "--max-new-tokens") {
      o.max_new_tokens = positive_int(flag, value);
    } else if (flag == "--streams") {
      o.streams = positive_int(flag, value);
    } else if (flag == "--encode-sizes") {
      o.encode_sizes.clear();
      if (value == "none") continue;  // generation figures only
      for (absl::string_view size : absl::StrSplit(value, ',')) {
        o.encode_sizes.push_back(positive_int(flag, size));
      }
      if (*std::min_element(o.encode_sizes.begin(), o.encode_sizes.end()) < 2) {
        fail("--encode-sizes: a document is bos and at least one byte of text: 2 tokens or more", 2);
      }
    } else {
      fail(absl::StrFormat("unknown flag %s\n%s", flag, kUsage), 2);
    }
  }
  if (o.address.empty()) fail(absl::StrFormat("--address is required\n%s", kUsage), 2);
  return o;
}

// Deterministic ASCII prose-like text of exactly n_bytes (byte-level model: one byte, one token).
std::string text_of(int64_t n_bytes, uint64_t seed) {
  const std::vector<absl::string_view> words = absl::StrSplit(
      "the and of to in that he said unto lord god his shall is was for with they them be it not all which "
      "thou thee him i my land people house day son children king israel upon came",
      ' ');
  std::string text;
  text.reserve(static_cast<size_t>(n_bytes) + 16);
  uint64_t state = seed;
  while (static_cast<int64_t>(text.size()) < n_bytes) {
    state = (state * 1103515245 + 12345) % (uint64_t{1} << 31);
    absl::StrAppend(&text, words[state % words.size()], state % 13 == 0 ? ".\n" : " ");
  }
  text.resize(static_cast<size_t>(n_bytes));
  return text;
}

// Linear interpolation between the closest ranks (the 50th is the median).
double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double k = static_cast<double>(v.size() - 1) * p / 100.0;
  const size_t lo = static_cast<size_t>(k);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (k - static_cast<double>(lo));
}

std::vector<double> ttft_ms(const std::vector<StreamRun>& runs) {
  std::vector<double> ms;
  ms.reserve(runs.size());
  for (const StreamRun& run : runs)
    ms.push_back(run.ttft_s * 1000);
  return ms;
}

std::string with_commas(int64_t n) {  // n >= 0
  const std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

double process_cpu_s() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return s(usage.ru_utime) + s(usage.ru_stime);
}

struct Concurrent {
  std::vector<StreamRun> runs;
  double wall_s = 0;        // from the barrier's release to the last stream's status
  double client_cpu_s = 0;  // this process's CPU time meanwhile (gRPC's own threads included)
};

// N streams, one thread each, released together by a barrier.
Concurrent concurrent(const ServeClient& client, const Options& o) {
  Concurrent c;
  c.runs.resize(static_cast<size_t>(o.streams));
  Clock::time_point t0;
  std::barrier start(o.streams, [&t0]() noexcept { t0 = Clock::now(); });
  const double cpu0 = process_cpu_s();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < c.runs.size(); ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      c.runs[i] = client.generate_stream(2000 + i, absl::StrFormat("Ps%d:1 Blessed is the man", i + 1),
                                         o.max_new_tokens);
    });
  }
  for (std::thread& t : threads)
    t.join();
  c.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  c.client_cpu_s = process_cpu_s() - cpu0;
  return c;
}

// OK while process `pid` runs (or when no pid was given); an error once it has exited (gone, or a zombie
// its parent has not reaped yet).
absl::Status server_alive(int64_t pid) {
  if (pid == 0) return absl::OkStatus();
  std::ifstream status(absl::StrFormat("/proc/%d/status", pid));
  for (std::string line; std::getline(status, line);) {
    absl::string_view state = line;
    if (absl::ConsumePrefix(&state, "State:")) {
      state = absl::StripLeadingAsciiWhitespace(state);
      if (!absl::StartsWith(state, "Z") && !absl::StartsWith(state, "X")) return absl::OkStatus();
      break;
    }
  }
  return absl::FailedPreconditionError(
      absl::StrFormat("the server (pid %d) exited before it was SERVING", pid));
}

std::string vm_hwm(int64_t pid) {
  if (pid == 0) return "not measured (no --pid)";
  const std::string path = absl::StrFormat("/proc/%d/status", pid);
  std::ifstream status(path);
  for (std::string line; std::getline(status, line);) {
    absl::string_view rest = line;
    int64_t kib = 0;
    if (absl::ConsumePrefix(&rest, "VmHWM:") && absl::SimpleAtoi(absl::StripSuffix(rest, "kB"), &kib)) {
      return with_commas(std::llround(static_cast<double>(kib) / 1024.0)) + " MiB";
    }
  }
  fail("no VmHWM in " + path + " (has the server exited?)");
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  ServeClient client(o.address);
  check(client.wait_serving(300, [&o] { return server_alive(o.pid); }));
  const absl::StatusOr<longnet::v1::GetInfoResponse> info = client.info();
  check(info.status());
  // First-request costs out of the figures.
  check(client.generate_stream(1, "warm up", o.max_new_tokens).status);

  // Rounds of one stream then N streams, so that both sides of the ratio sample the same minutes.
  std::vector<StreamRun> single;
  Concurrent many;
  double many_tps = 0;
  for (int round = 0; round < 3; ++round) {
    single.push_back(client.generate_stream(1000 + round, absl::StrFormat("Gen%d:1 In the beginning", round),
                                            o.max_new_tokens));
    check(single.back().status);
    Concurrent c = concurrent(client, o);
    int64_t total = 0;
    for (const StreamRun& run : c.runs) {
      check(run.status);
      total += run.tokens;
    }
    const double tps = static_cast<double>(total) / c.wall_s;
    if (tps > many_tps) {
      many_tps = tps;
      many = std::move(c);
    }
  }
  const StreamRun& best =
      *std::min_element(single.begin(), single.end(),
                        [](const StreamRun& a, const StreamRun& b) { return a.wall_s < b.wall_s; });
  const double one_tps = static_cast<double>(best.tokens) / best.wall_s;

  std::vector<std::pair<int64_t, double>> encodes;  // tokens, seconds
  for (int64_t tokens : o.encode_sizes) {
    const std::string text = text_of(tokens - 1, static_cast<uint64_t>(tokens));  // + bos
    absl::StatusOr<double> wall_s = client.encode_stream(text, tokens, info->model().embed_dim());
    check(wall_s.status());
    encodes.emplace_back(tokens, *wall_s);
  }
  const std::string hwm = vm_hwm(o.pid);

  const int64_t n = o.streams;
  std::vector<std::pair<std::string, std::string>> rows = {
      {"model / device", absl::StrFormat("%s / %s, %d cores", info->model().name(), info->device(),
                                         std::thread::hardware_concurrency())},
      {"1 stream: tokens/s (best of 3)", absl::StrFormat("%.1f", one_tps)},
      {absl::StrFormat("%d streams: aggregate tokens/s (best of 3)", n),
       absl::StrFormat("%.1f (%d x %d tokens in %.2f s)", many_tps, n, o.max_new_tokens, many.wall_s)},
      {absl::StrFormat("ratio %d-stream / 1-stream tokens/s", n),
       absl::StrFormat("%.2f", many_tps / one_tps)},
      {"TTFT 1 stream: median", absl::StrFormat("%.1f ms", percentile(ttft_ms(single), 50))},
      {absl::StrFormat("TTFT %d streams: median / p90", n),
       absl::StrFormat("%.1f ms / %.1f ms", percentile(ttft_ms(many.runs), 50),
                       percentile(ttft_ms(many.runs), 90))},
      {absl::StrFormat("load generator CPU during the %d streams", n),
       absl::StrFormat("%.3f s (%.0f%% of one core)", many.client_cpu_s,
                       100 * many.client_cpu_s / many.wall_s)},
  };
  for (const auto& [tokens, wall_s] : encodes) {
    rows.emplace_back(
        absl::StrFormat("EncodeStream %s tokens: tokens/s", with_commas(tokens)),
        absl::StrFormat("%s (%.2f s)", with_commas(std::llround(static_cast<double>(tokens) / wall_s)),
                        wall_s));
  }
  rows.emplace_back(encodes.empty() ? "server peak RSS (VmHWM)" : "server peak RSS (VmHWM) after the encodes",
                    hwm);

  size_t width = 0;
  for (const auto& row : rows)
    width = std::max(width, row.first.size());
  std::printf("%-*s  value\n", static_cast<int>(width), "metric");
  for (const auto& [metric, value] : rows)
    std::printf("%-*s  %s\n", static_cast<int>(width), metric.c_str(), value.c_str());
  return 0;
}
