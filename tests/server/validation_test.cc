#include "api/validation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

namespace longnet::server {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

ModelTraits decoder() {
  ModelTraits m;
  m.type = model::ModelType::kDecoder;
  m.vocab_size = 259;
  m.bos_id = 256;
  m.eos_id = 257;
  return m;
}

ModelTraits with_type(model::ModelType type) {
  ModelTraits m = decoder();
  m.type = type;
  return m;
}

RequestLimits small_limits() {
  RequestLimits l;
  l.max_prompt_tokens = 16;
  l.max_new_tokens = 100;
  l.max_document_tokens = 8;
  l.max_batch_documents = 3;
  l.max_stop_sequences = 2;
  l.max_stop_sequence_bytes = 4;
  l.max_top_logprobs = 5;
  l.max_message_bytes = 1000;
  return l;
}

// The byte tokenizer of the demo model: [bos] + one id per byte.
std::vector<int32_t> byte_tokens(std::string_view text) {
  std::vector<int32_t> ids = {256};
  for (unsigned char c : text)
    ids.push_back(c);
  return ids;
}

bool mentions(const absl::Status& status, const std::string& text) {
  return std::string(status.message()).find(text) != std::string::npos;
}

// --- GenerateRequest -------------------------------------------------------------------------------------

struct GenerateCase {
  std::string name;
  std::function<void(v1::GenerateRequest&)> edit;
  absl::StatusCode code;
  std::string field;  // the message starts with it
  std::string also;   // and contains this (the value or the limit)
};
void PrintTo(const GenerateCase& c, std::ostream* os) {
  *os << c.name;
}

class GenerateValidation : public testing::TestWithParam<GenerateCase> {};

TEST_P(GenerateValidation, RefusesWithTheFieldNamed) {
  const GenerateCase& c = GetParam();
  v1::GenerateRequest request;
  request.set_text("hello");
  c.edit(request);
  absl::StatusOr<GenerationPlan> plan = validate_generate(request, decoder(), small_limits(), byte_tokens);
  ASSERT_FALSE(plan.ok()) << c.name;
  EXPECT_EQ(plan.status().code(), c.code) << plan.status();
  EXPECT_EQ(std::string(plan.status().message()).rfind(c.field, 0), 0u) << plan.status();
  EXPECT_TRUE(mentions(plan.status(), c.also)) << plan.status();
}

const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

INSTANTIATE_TEST_SUITE_P(
    Rules, GenerateValidation,
    testing::Values(
        GenerateCase{"InputUnset", [](auto& r) { r.clear_input(); }, kInvalid, "input", "text or ids"},
        GenerateCase{"EmptyText", [](auto& r) { r.set_text(""); }, kInvalid, "text", "empty"},
        GenerateCase{"EmptyIds", [](auto& r) { r.mutable_ids(); }, kInvalid, "ids", "empty"},
        GenerateCase{"IdOverVocab",
                     [](auto& r) {
                       for (int id : {1, 2, 3, 70000})
                         r.mutable_ids()->add_ids(id);
                     },
                     kInvalid, "ids[3]", "70000 is not below vocab_size 259"},
        GenerateCase{"NegativeId", [](auto& r) { r.mutable_ids()->add_ids(-1); }, kInvalid, "ids[0]",
                     "negative"},
        GenerateCase{"PromptOverLimit", [](auto& r) { r.set_text(std::string(16, 'a')); }, kInvalid, "text",
                     "max_prompt_tokens is 16"},
        GenerateCase{"MaxNewTokensZero", [](auto& r) { r.mutable_parameters()->set_max_new_tokens(0); },
                     kInvalid, "parameters.max_new_tokens", "0"},
        GenerateCase{"MaxNewTokensOverLimit",
                     [](auto& r) { r.mutable_parameters()->set_max_new_tokens(101); }, kInvalid,
                     "parameters.max_new_tokens", "100"},
        GenerateCase{"TemperatureNegative", [](auto& r) { r.mutable_parameters()->set_temperature(-0.5f); },
                     kInvalid, "parameters.temperature", "-0.5"},
        GenerateCase{"TemperatureInfinite", [](auto& r) { r.mutable_parameters()->set_temperature(kInf); },
                     kInvalid, "parameters.temperature", "finite"},
        GenerateCase{"TemperatureNaN", [](auto& r) { r.mutable_parameters()->set_temperature(kNaN); },
                     kInvalid, "parameters.temperature", "finite"},
        GenerateCase{"TopKNegative", [](auto& r) { r.mutable_parameters()->set_top_k(-1); }, kInvalid,
                     "parameters.top_k", "-1"},
        GenerateCase{"TopPOverOne", [](auto& r) { r.mutable_parameters()->set_top_p(1.5f); }, kInvalid,
                     "parameters.top_p", "1.5 is not in (0, 1]"},
        GenerateCase{"TopPZero", [](auto& r) { r.mutable_parameters()->set_top_p(0.0f); }, kInvalid,
                     "parameters.top_p", "(0, 1]"},
        GenerateCase{"TopPNaN", [](auto& r) { r.mutable_parameters()->set_top_p(kNaN); }, kInvalid,
                     "parameters.top_p", "nan"},
        GenerateCase{"RepetitionPenaltyZero",
                     [](auto& r) { r.mutable_parameters()->set_repetition_penalty(0.0f); }, kInvalid,
                     "parameters.repetition_penalty", "> 0"},
        GenerateCase{"RepetitionPenaltyInfinite",
                     [](auto& r) { r.mutable_parameters()->set_repetition_penalty(kInf); }, kInvalid,
                     "parameters.repetition_penalty", "finite"},
        GenerateCase{"TooManyStops",
                     [](auto& r) {
                       for (const char* s : {"a", "b", "c"})
                         r.mutable_parameters()->add_stop(s);
                     },
                     kInvalid, "parameters.stop", "max_stop_sequences 2"},
        GenerateCase{"EmptyStop",
                     [](auto& r) {
                       r.mutable_parameters()->add_stop("x");
                       r.mutable_parameters()->add_stop("");
                     },
                     kInvalid, "parameters.stop[1]", "empty"},
        GenerateCase{"LongStop", [](auto& r) { r.mutable_parameters()->add_stop("abcde"); }, kInvalid,
                     "parameters.stop[0]", "max_stop_sequence_bytes 4"},
        GenerateCase{"StopTokenOutsideVocab",
                     [](auto& r) { r.mutable_parameters()->add_stop_token_ids(259); }, kInvalid,
                     "parameters.stop_token_ids[0]", "vocab_size 259"},
        GenerateCase{"TopLogprobsOverLimit", [](auto& r) { r.mutable_parameters()->set_top_logprobs(6); },
                     kInvalid, "parameters.top_logprobs", "max_top_logprobs 5"},
        GenerateCase{"RequestIdTooLong", [](auto& r) { r.set_request_id(std::string(129, 'x')); }, kInvalid,
                     "request_id", "128"},
        GenerateCase{"RequestIdNotPrintable", [](auto& r) { r.set_request_id("a\nb"); }, kInvalid,
                     "request_id", "printable ASCII"}),
    [](const testing::TestParamInfo<GenerateCase>& param) { return param.param.name; });

TEST(ValidationGenerate, EncoderOnlyModelIsFailedPrecondition) {
  v1::GenerateRequest request;
  request.set_text("hello");
  absl::StatusOr<GenerationPlan> plan =
      validate_generate(request, with_type(model::ModelType::kEncoder), small_limits(), byte_tokens);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(mentions(plan.status(), "longnet_encoder")) << plan.status();
}

TEST(ValidationGeneratePlan, DefaultsAndEos) {
  v1::GenerateRequest request;
  request.set_text("hi");
  absl::StatusOr<GenerationPlan> plan = validate_generate(request, decoder(), small_limits(), byte_tokens);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->job.max_new_tokens, kDefaultMaxNewTokens);
  EXPECT_EQ(plan->job.prompt_ids, (std::vector<int32_t>{256, 'h', 'i'}));
  EXPECT_TRUE(plan->job.source_ids.empty());
  EXPECT_EQ(plan->job.sampling.stop_ids, (std::vector<int32_t>{257}));
  EXPECT_EQ(plan->job.eos_id, 257);
  EXPECT_FLOAT_EQ(plan->job.sampling.temperature, 1.0f);
  EXPECT_FALSE(plan->seed.has_value());
  EXPECT_EQ(plan->prompt_tokens, 3);
}

TEST(ValidationGeneratePlan, IgnoreEosAndStopIdsAndSeed) {
  v1::GenerateRequest request;
  request.mutable_ids()->add_ids(5);
  v1::GenerationParameters* p = request.mutable_parameters();
  p->set_ignore_eos(true);
  p->add_stop_token_ids(10);
  p->set_seed(42);
  p->set_temperature(0);
  p->set_max_new_tokens(7);
  p->set_top_logprobs(2);
  absl::StatusOr<GenerationPlan> plan = validate_generate(request, decoder(), small_limits(), byte_tokens);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->job.eos_id, -1);
  EXPECT_EQ(plan->job.sampling.stop_ids, (std::vector<int32_t>{10}));
  EXPECT_EQ(plan->seed, 42u);
  EXPECT_EQ(plan->job.sampling.seed, 42u);
  EXPECT_EQ(plan->job.sampling.temperature, 0.0f);
  EXPECT_EQ(plan->job.max_new_tokens, 7);
  EXPECT_TRUE(plan->job.logprobs);
  EXPECT_EQ(plan->job.top_logprobs, 2);
  EXPECT_EQ(plan->job.prompt_ids, (std::vector<int32_t>{5}));
}

TEST(ValidationGeneratePlan, EncoderDecoderReadsThePromptAsSource) {
  v1::GenerateRequest request;
  request.set_text("ab");
  request.mutable_parameters()->set_echo(true);
  absl::StatusOr<GenerationPlan> plan =
      validate_generate(request, with_type(model::ModelType::kEncoderDecoder), small_limits(), byte_tokens);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->job.source_ids, (std::vector<int32_t>{256, 'a', 'b'}));
  EXPECT_EQ(plan->job.prompt_ids, (std::vector<int32_t>{256}));
  EXPECT_EQ(plan->prompt_ids, (std::vector<int32_t>{256, 'a', 'b'}));
}

TEST(ValidationMessageSize, OverTheLimitNamesIt) {
  EXPECT_TRUE(check_message_size(1000, small_limits()).ok());
  absl::Status st = check_message_size(1001, small_limits());
  EXPECT_EQ(st.code(), kInvalid);
  EXPECT_EQ(std::string(st.message()), "request: 1001 bytes is over max_message_bytes 1000");
}

TEST(ValidationRequestId, PrintableAsciiUpTo128) {
  EXPECT_TRUE(validate_request_id("").ok());
  EXPECT_TRUE(validate_request_id(std::string(128, '~')).ok());
  EXPECT_FALSE(validate_request_id(std::string(129, 'a')).ok());
  EXPECT_FALSE(validate_request_id("caf\xc3\xa9").ok());
}

// --- Encode options and documents -----------------------------------------------------------------------

struct OptionsCase {
  std::string name;
  std::function<void(v1::EncodeOptions&)> edit;
  ModelTraits model;
  EncodeRpc rpc;
  std::string field;
  std::string also;
};
void PrintTo(const OptionsCase& c, std::ostream* os) {
  *os << c.name;
}

class EncodeOptionsValidation : public testing::TestWithParam<OptionsCase> {};

TEST_P(EncodeOptionsValidation, RefusesWithTheFieldNamed) {
  const OptionsCase& c = GetParam();
  v1::EncodeOptions options;
  c.edit(options);
  absl::StatusOr<EncodeSettings> s = validate_encode_options(options, c.model, small_limits(), c.rpc);
  ASSERT_FALSE(s.ok()) << c.name;
  EXPECT_EQ(s.status().code(), kInvalid) << s.status();
  EXPECT_EQ(std::string(s.status().message()).rfind(c.field, 0), 0u) << s.status();
  EXPECT_TRUE(mentions(s.status(), c.also)) << s.status();
}

INSTANTIATE_TEST_SUITE_P(
    Rules, EncodeOptionsValidation,
    testing::Values(
        OptionsCase{"UnknownPooling", [](auto& o) { o.set_pooling(static_cast<v1::Pooling>(9)); }, decoder(),
                    EncodeRpc::kEncode, "options.pooling", "9"},
        OptionsCase{"UnknownTruncation", [](auto& o) { o.set_truncation(static_cast<v1::Truncation>(7)); },
                    decoder(), EncodeRpc::kEncode, "options.truncation", "7"},
        OptionsCase{"MaxTokensOverLimit", [](auto& o) { o.set_max_tokens(9); }, decoder(), EncodeRpc::kEncode,
                    "options.max_tokens", "max_document_tokens 8"},
        OptionsCase{"TokenStatesInUnary", [](auto& o) { o.set_return_token_states(true); }, decoder(),
                    EncodeRpc::kEncode, "options.return_token_states", "use EncodeStream"},
        OptionsCase{"TokenStatesInBatch", [](auto& o) { o.set_return_token_states(true); }, decoder(),
                    EncodeRpc::kEncodeBatch, "options.return_token_states", "use EncodeStream"},
        OptionsCase{"TokenLogprobsInUnary",
                    [](auto& o) {
                      o.set_score(true);
                      o.set_return_token_logprobs(true);
                    },
                    decoder(), EncodeRpc::kEncode, "options.return_token_logprobs", "use EncodeStream"},
        OptionsCase{"TokenLogprobsWithoutScore", [](auto& o) { o.set_return_token_logprobs(true); },
                    decoder(), EncodeRpc::kEncodeStream, "options.return_token_logprobs", "options.score"},
        OptionsCase{"ScoreOnEncoder", [](auto& o) { o.set_score(true); },
                    with_type(model::ModelType::kEncoder), EncodeRpc::kEncode, "options.score",
                    "longnet_encoder"},
        OptionsCase{"ScoreOnEncoderDecoder", [](auto& o) { o.set_score(true); },
                    with_type(model::ModelType::kEncoderDecoder), EncodeRpc::kEncode, "options.score",
                    "longnet_encoder_decoder"},
        OptionsCase{"NormalizeWithoutPooling",
                    [](auto& o) {
                      o.set_pooling(v1::POOLING_NONE);
                      o.set_normalize(true);
                    },
                    decoder(), EncodeRpc::kEncode, "options.normalize", "POOLING_NONE"}),
    [](const testing::TestParamInfo<OptionsCase>& param) { return param.param.name; });

TEST(ValidationEncodeOptions, DefaultsAreMeanAndNoTruncation) {
  absl::StatusOr<EncodeSettings> s =
      validate_encode_options(v1::EncodeOptions(), decoder(), small_limits(), EncodeRpc::kEncode);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->pooling, Pooling::kMean);
  EXPECT_EQ(s->truncation, v1::TRUNCATION_NONE);
  EXPECT_EQ(s->max_tokens, 8);
  EXPECT_FALSE(s->max_tokens_given);
}

TEST(ValidationEncodeOptions, StreamTakesPerTokenOutputs) {
  v1::EncodeOptions options;
  options.set_return_token_states(true);
  options.set_score(true);
  options.set_return_token_logprobs(true);
  absl::StatusOr<EncodeSettings> s =
      validate_encode_options(options, decoder(), small_limits(), EncodeRpc::kEncodeStream);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->return_token_states && s->score && s->return_token_logprobs);
}

EncodeSettings settings_with(v1::Truncation truncation, uint64_t max_tokens = 0, bool score = false) {
  v1::EncodeOptions options;
  options.set_truncation(truncation);
  options.set_max_tokens(max_tokens);
  options.set_score(score);
  return *validate_encode_options(options, decoder(), small_limits(), EncodeRpc::kEncode);
}

TEST(ValidationPrepareDocument, NoTruncationRefusesNamingTheLimitAndTheFix) {
  v1::Document doc;
  doc.set_text("0123456789");  // 11 tokens with bos
  absl::StatusOr<PreparedDocument> d =
      prepare_document(doc, settings_with(v1::TRUNCATION_UNSPECIFIED), decoder(), byte_tokens, "document");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), kInvalid);
  EXPECT_EQ(std::string(d.status().message()),
            "document has 11 tokens; max_document_tokens is 8; set options.truncation to TRUNCATION_LEFT or "
            "TRUNCATION_RIGHT to cut it");
}

TEST(ValidationPrepareDocument, LeftKeepsTheLastRightTheFirst) {
  std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6};
  absl::StatusOr<PreparedDocument> left =
      prepare_document(ids, false, 0, settings_with(v1::TRUNCATION_LEFT, 4), decoder(), "document");
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(left->ids, (std::vector<int32_t>{3, 4, 5, 6}));
  EXPECT_EQ(left->truncated, 2);
  absl::StatusOr<PreparedDocument> right =
      prepare_document(ids, false, 0, settings_with(v1::TRUNCATION_RIGHT, 4), decoder(), "document");
  ASSERT_TRUE(right.ok()) << right.status();
  EXPECT_EQ(right->ids, (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(right->truncated, 2);
  absl::StatusOr<PreparedDocument> none =
      prepare_document(ids, false, 0, settings_with(v1::TRUNCATION_NONE, 4), decoder(), "documents[1]");
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(mentions(none.status(), "documents[1] has 6 tokens; options.max_tokens is 4")) << none.status();
}

struct DocumentCase {
  std::string name;
  std::function<void(v1::Document&)> edit;
  bool score;
  std::string field;
  std::string also;
};
void PrintTo(const DocumentCase& c, std::ostream* os) {
  *os << c.name;
}

class DocumentValidation : public testing::TestWithParam<DocumentCase> {};

TEST_P(DocumentValidation, RefusesWithTheFieldNamed) {
  const DocumentCase& c = GetParam();
  v1::Document doc;
  c.edit(doc);
  absl::StatusOr<PreparedDocument> d = prepare_document(doc, settings_with(v1::TRUNCATION_NONE, 0, c.score),
                                                        decoder(), byte_tokens, "document");
  ASSERT_FALSE(d.ok()) << c.name;
  EXPECT_EQ(d.status().code(), kInvalid) << d.status();
  EXPECT_EQ(std::string(d.status().message()).rfind(c.field, 0), 0u) << d.status();
  EXPECT_TRUE(mentions(d.status(), c.also)) << d.status();
}

INSTANTIATE_TEST_SUITE_P(
    Rules, DocumentValidation,
    testing::Values(
        DocumentCase{"InputUnset", [](auto&) {}, false, "document.input", "text or ids"},
        DocumentCase{"EmptyText", [](auto& d) { d.set_text(""); }, false, "document.text", "empty"},
        DocumentCase{"EmptyIds", [](auto& d) { d.mutable_ids(); }, false, "document.ids", "empty"},
        DocumentCase{"IdOutsideVocab",
                     [](auto& d) {
                       d.mutable_ids()->add_ids(4);
                       d.mutable_ids()->add_ids(300);
                     },
                     false, "document.ids[1]", "300 is not below vocab_size 259"},
        DocumentCase{"ScoredSingleToken", [](auto& d) { d.mutable_ids()->add_ids(4); }, true, "document",
                     "at least 2 tokens"}),
    [](const testing::TestParamInfo<DocumentCase>& param) { return param.param.name; });

TEST(ValidationPrepareDocument, TextCountsItsBytes) {
  v1::Document doc;
  doc.set_text("abc");
  absl::StatusOr<PreparedDocument> d =
      prepare_document(doc, settings_with(v1::TRUNCATION_NONE), decoder(), byte_tokens, "document");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->bytes, 3u);
  EXPECT_TRUE(d->from_text);
  EXPECT_EQ(d->ids.size(), 4u);
}

// --- EncodeBatch ---------------------------------------------------------------------------------------

TEST(ValidationBatchShape, Rules) {
  v1::EncodeBatchRequest request;
  absl::Status st = validate_batch_shape(request, small_limits());
  EXPECT_EQ(st.code(), kInvalid);
  EXPECT_TRUE(mentions(st, "documents: empty")) << st;

  for (const char* id : {"a", "b", "c", "d"})
    request.add_documents()->set_id(id);
  st = validate_batch_shape(request, small_limits());
  EXPECT_EQ(st.code(), kInvalid);
  EXPECT_TRUE(mentions(st, "max_batch_documents 3")) << st;

  request.mutable_documents()->RemoveLast();
  EXPECT_TRUE(validate_batch_shape(request, small_limits()).ok());
  request.mutable_documents(1)->set_id("");
  st = validate_batch_shape(request, small_limits());
  EXPECT_TRUE(mentions(st, "documents[1].id: empty")) << st;
  request.mutable_documents(1)->set_id("a");
  st = validate_batch_shape(request, small_limits());
  EXPECT_EQ(st.code(), kInvalid);
  EXPECT_TRUE(mentions(st, "documents[1].id")) << st;
  EXPECT_TRUE(mentions(st, "documents[0].id")) << st;
}

// --- EncodeStream -------------------------------------------------------------------------------------

v1::EncodeStreamRequest text_chunk(const std::string& text) {
  v1::EncodeStreamRequest m;
  m.set_text(text);
  return m;
}

v1::EncodeStreamRequest ids_chunk(std::vector<int32_t> ids) {
  v1::EncodeStreamRequest m;
  for (int32_t id : ids)
    m.mutable_ids()->add_ids(id);
  return m;
}

TEST(ValidationDocumentAssembler, ConcatenatesTextChunks) {
  DocumentAssembler a(small_limits());
  v1::EncodeStreamRequest first = text_chunk("ab");
  first.mutable_options()->set_pooling(v1::POOLING_LAST);
  first.set_request_id("r");
  ASSERT_TRUE(a.add(first, 0).ok());
  ASSERT_TRUE(a.add(text_chunk("cd"), 1).ok());
  EXPECT_TRUE(a.is_text());
  EXPECT_EQ(a.text(), "abcd");
}

TEST(ValidationDocumentAssembler, MixingTextAndIdsIsRefused) {
  DocumentAssembler a(small_limits());
  ASSERT_TRUE(a.add(text_chunk("ab"), 0).ok());
  absl::Status st = a.add(ids_chunk({1}), 1);
  EXPECT_EQ(st.code(), kInvalid);
  EXPECT_TRUE(mentions(st, "all text or all ids")) << st;

  DocumentAssembler b(small_limits());
  ASSERT_TRUE(b.add(ids_chunk({1}), 0).ok());
  st = b.add(text_chunk("x"), 1);
  EXPECT_EQ(st.code(), kInvalid);
  EXPECT_EQ(std::string(st.message()).rfind("text", 0), 0u) << st;
}

TEST(ValidationDocumentAssembler, TextOverMaxDocumentBytesIsRefusedAtOnce) {
  DocumentAssembler a(small_limits());  // max_document_bytes = 16 x 8 = 128
  ASSERT_TRUE(a.add(text_chunk(std::string(100, 'a')), 0).ok());
  absl::Status st = a.add(text_chunk(std::string(29, 'a')), 1);
  EXPECT_EQ(st.code(), kInvalid);
  EXPECT_TRUE(mentions(st, "max_document_bytes 128")) << st;
}

TEST(ValidationDocumentAssembler, OptionsOnlyInTheFirstMessage) {
  DocumentAssembler a(small_limits());
  ASSERT_TRUE(a.add(text_chunk("a"), 0).ok());
  v1::EncodeStreamRequest late = text_chunk("b");
  late.mutable_options()->set_normalize(true);
  absl::Status st = a.add(late, 1);
  EXPECT_EQ(st.code(), kInvalid);
  EXPECT_EQ(std::string(st.message()).rfind("options", 0), 0u) << st;
  v1::EncodeStreamRequest late_id = text_chunk("b");
  late_id.set_document_id("x");
  EXPECT_EQ(a.add(late_id, 2).code(), kInvalid);
}

}  // namespace
}  // namespace longnet::server
