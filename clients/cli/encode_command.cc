// longnet-cli encode [options] FILE...: pooled vectors of long documents, each uploaded by EncodeStream.
// longnet-cli score [options] FILE...: their log-likelihood and bits per byte (decoder models).
#include <cstdio>
#include <fstream>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "commands.h"
#include "connection.h"
#include "document_stream.h"
#include "npy_writer.h"

namespace longnet::client {

namespace {

constexpr int64_t kDefaultPieceBytes = 256 << 10;

absl::StatusOr<v1::Pooling> parse_pooling(const std::string& name) {
  if (name == "mean") return v1::POOLING_MEAN;
  if (name == "first") return v1::POOLING_FIRST;
  if (name == "last") return v1::POOLING_LAST;
  if (name == "none") return v1::POOLING_NONE;
  return absl::InvalidArgumentError(
      absl::StrCat("--pooling: '", name, "' is not one of mean, first, last, none"));
}

absl::StatusOr<v1::Truncation> parse_truncation(const std::string& name) {
  if (name == "none") return v1::TRUNCATION_NONE;
  if (name == "left") return v1::TRUNCATION_LEFT;
  if (name == "right") return v1::TRUNCATION_RIGHT;
  return absl::InvalidArgumentError(absl::StrCat("--truncate: '", name, "' is not one of none, left, right"));
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// One JSON object per document, on one line.
std::string result_json(const std::string& path, const StreamedDocument& d, bool with_score) {
  const v1::EncodeResult& r = d.result;
  std::string json = absl::StrCat("{\"file\": ", json_string(path), ", \"tokens\": ", r.tokens(),
                                  ", \"truncated_tokens\": ", r.truncated_tokens(), ", \"bytes\": ", d.bytes);
  if (with_score) {
    absl::StrAppend(&json, absl::StrFormat(", \"log_likelihood\": %.17g, \"scored_tokens\": %d, "
                                           "\"bits_per_token\": %.17g, \"bits_per_byte\": %.17g",
                                           r.score().log_likelihood(), r.score().scored_tokens(),
                                           r.score().bits_per_token(), r.score().bits_per_byte()));
  }
  if (r.pooled_size() > 0) {
    absl::StrAppend(&json, ", \"pooled\": [");
    for (int i = 0; i < r.pooled_size(); ++i)
      absl::StrAppend(&json, i > 0 ? ", " : "", absl::StrFormat("%.9g", r.pooled(i)));
    absl::StrAppend(&json, "]");
  }
  return json + "}";
}

int usage_error(const char* command, absl::string_view message) {
  std::fprintf(stderr, "longnet-cli %s: %s\n", command, std::string(message).c_str());
  return kExitUsage;
}

// encode and score: the same upload, different options and output.
int run_documents(const char* command, const std::vector<std::string>& argv, bool score) {
  std::set<std::string> flags = connection_flags();
  flags.insert({"pooling", "truncate", "max-tokens", "output", "piece-bytes"});
  std::set<std::string> switches = connection_switches();
  switches.insert({"normalize", "no-progress"});
  absl::StatusOr<cli::Args> args = cli::Args::parse(argv, flags, switches, /*positional=*/true);
  if (!args.ok()) return usage_error(command, args.status().message());
  absl::StatusOr<Connection> connection = read_connection(*args);
  if (!connection.ok()) return usage_error(command, connection.status().message());
  if (args->positional().empty()) return usage_error(command, "no FILE given");

  v1::EncodeOptions options;
  absl::StatusOr<v1::Pooling> pooling = parse_pooling(args->get("pooling", score ? "none" : "mean"));
  absl::StatusOr<v1::Truncation> truncation = parse_truncation(args->get("truncate", "none"));
  absl::StatusOr<int64_t> max_tokens = args->get_int("max-tokens", 0);
  absl::StatusOr<int64_t> piece_bytes = args->get_int("piece-bytes", kDefaultPieceBytes);
  for (const absl::Status& st :
       {pooling.status(), truncation.status(), max_tokens.status(), piece_bytes.status()}) {
    if (!st.ok()) return usage_error(command, st.message());
  }
  if (*max_tokens < 0) return usage_error(command, "--max-tokens: must be >= 0");
  if (*piece_bytes < 4) return usage_error(command, "--piece-bytes: must be >= 4");
  options.set_pooling(*pooling);
  options.set_normalize(args->has("normalize"));
  options.set_truncation(*truncation);
  options.set_max_tokens(static_cast<uint64_t>(*max_tokens));
  options.set_score(score);

  // --output FILE.npy: the pooled vectors as a documents x embed_dim float32 array; else JSON lines (to
  // --output FILE or stdout).
  const std::string output = args->get("output", "");
  const bool npy = output.size() >= 4 && output.ends_with(".npy");
  if (npy && *pooling == v1::POOLING_NONE) return usage_error(command, "--output .npy needs pooled vectors");
  std::ofstream json_file;
  if (!output.empty() && !npy) {
    json_file.open(output, std::ios::binary | std::ios::trunc);
    if (!json_file) return usage_error(command, absl::StrCat("--output: cannot write '", output, "'"));
  }

  auto stub = v1::EncodingService::NewStub(open_channel(*connection));
  std::vector<float> vectors;
  int64_t dim = -1;
  for (const std::string& path : args->positional()) {
    const StreamedDocument d = stream_document(*stub, *connection, path, options,
                                               static_cast<size_t>(*piece_bytes), !args->has("no-progress"));
    if (d.exit_code != kExitOk) {
      std::fprintf(stderr, "longnet-cli: %s\n", d.error.c_str());
      return d.exit_code;
    }
    if (npy) {
      if (dim >= 0 && dim != d.result.pooled_size()) {
        std::fprintf(stderr, "longnet-cli: %s: %d dims, the documents before had %lld\n", path.c_str(),
                     d.result.pooled_size(), static_cast<long long>(dim));
        return kExitRpcFailed;
      }
      dim = d.result.pooled_size();
      vectors.insert(vectors.end(), d.result.pooled().begin(), d.result.pooled().end());
      continue;
    }
    const std::string line = result_json(path, d, score) + "\n";
    if (json_file.is_open()) {
      json_file << line;
    } else {
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fflush(stdout);
    }
  }
  if (npy) {
    const int64_t shape[] = {static_cast<int64_t>(args->positional().size()), dim};
    if (absl::Status st = cli::write_npy_f32(output, shape, vectors.data()); !st.ok()) {
      return usage_error(command, st.message());
    }
  }
  if (json_file.is_open() && !json_file.flush()) return usage_error(command, "--output: write failed");
  return kExitOk;
}

}  // namespace

int run_encode(const std::vector<std::string>& argv) {
  return run_documents("encode", argv, /*score=*/false);
}

int run_score(const std::vector<std::string>& argv) {
  return run_documents("score", argv, /*score=*/true);
}

}  // namespace longnet::client
