#pragma once

#include <string>
#include <vector>

// The subcommands of longnet-cli. Each takes the arguments after its name and returns the exit code
// (connection.h); errors go to stderr.
namespace longnet::client {

int run_generate(const std::vector<std::string>& argv);  // GenerateStream, text to stdout as it comes
int run_encode(const std::vector<std::string>& argv);    // EncodeStream per file, progress on stderr
int run_score(const std::vector<std::string>& argv);     // EncodeStream with score, per file
int run_tokenize(const std::vector<std::string>& argv);
int run_info(const std::vector<std::string>& argv);
int run_health(const std::vector<std::string>& argv);

}  // namespace longnet::client
