#pragma once

#include <string>
#include <vector>

#include "api/call_guard.h"
#include "api/upload_budget.h"
#include "api/validation.h"
#include "config/server_config.h"
#include "engine/engine.h"
#include "longnet/model/model.h"
#include "longnet/model/tokenizer.h"

// What the longnet.v1 services share: the serving state, the limits, the metrics and, once loaded, the
// model, its tokenizer and the engine.
namespace longnet::server {

class Metrics;

struct LoadedModel {
  const model::LongNetModel* model = nullptr;
  const model::Tokenizer* tokenizer = nullptr;
  Engine* engine = nullptr;
  ModelTraits traits;
  std::string name;            // the model directory's name
  std::string device = "cpu";  // where the engine runs
};

struct ApiContext {
  ApiContext(const ServerConfig& server_config, ApiKeys keys, Metrics* server_metrics);

  ServerConfig config;
  RequestLimits limits;
  Metrics* metrics;
  ServingState state;
  UploadBudget uploads;  // EncodeStream documents being received: a quarter of the memory budget
  // Written once, before `state` enters the serving phase; handlers read it only after admission, so the
  // state's mutex orders the two.
  LoadedModel loaded;

  // Text -> ids with the model's tokenizer, as prompts and documents are tokenized.
  std::vector<int32_t> tokenize(std::string_view text) const;
  TokenizeFn tokenize_fn() const {
    return [this](std::string_view text) { return tokenize(text); };
  }
};

RequestLimits request_limits(const ServerConfig& config);
EngineLimits engine_limits(const ServerConfig& config);

}  // namespace longnet::server
