#include "longnet/model/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace longnet::model {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

bool has(const absl::Status& status, const std::string& text) {
  return std::string(status.message()).find(text) != std::string::npos;
}

// SamplingParams with chosen fields set (GCC warns about designated initializers that omit members).
struct Params {
  SamplingParams p;
  Params& temperature(float v) { return p.temperature = v, *this; }
  Params& top_k(int32_t v) { return p.top_k = v, *this; }
  Params& top_p(float v) { return p.top_p = v, *this; }
  Params& repetition_penalty(float v) { return p.repetition_penalty = v, *this; }
  Params& seed(uint64_t v) { return p.seed = v, *this; }
  Params& stop_ids(std::vector<int32_t> v) { return p.stop_ids = std::move(v), *this; }
  operator SamplingParams() const { return p; }  // NOLINT(google-explicit-constructor): test shorthand
};

Sampler make(SamplingParams params) {
  absl::StatusOr<Sampler> sampler = Sampler::create(std::move(params));
  EXPECT_TRUE(sampler.ok()) << sampler.status();
  return *std::move(sampler);
}

int32_t must_sample(Sampler& sampler, std::span<const float> logits, std::span<const int32_t> history = {}) {
  absl::StatusOr<int32_t> id = sampler.sample(logits, history);
  EXPECT_TRUE(id.ok()) << id.status();
  return id.ok() ? *id : -1;
}

std::vector<float> random_logits(std::mt19937& rng, size_t n, float scale = 3.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> logits(n);
  for (float& x : logits)
    x = normal(rng);
  return logits;
}

int32_t argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// softmax(logits / temperature) in double.
std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  const double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    total += p[i] = std::exp((logits[i] - max) / temperature);
  for (double& x : p)
    x /= total;
  return p;
}

// Pearson's chi-square of `counts` against `expected` probabilities (ids with zero probability must have
// zero counts, checked separately).
double chi_square(const std::vector<int>& counts, const std::vector<double>& expected, int draws) {
  double chi2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] == 0) continue;
    const double e = expected[i] * draws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi2;
}

std::vector<int> histogram(Sampler& sampler, const std::vector<float>& logits, int draws) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i)
    ++counts[static_cast<size_t>(must_sample(sampler, logits))];
  return counts;
}

TEST(SamplingParamsTest, ValidationNamesTheFieldAndTheValue) {
  EXPECT_TRUE(SamplingParams{}.validate().ok());
  const auto check = [](const SamplingParams& params, const std::string& text) {
    const absl::Status status = params.validate(100);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_TRUE(has(status, text)) << status;
    EXPECT_EQ(Sampler::create(params).ok(), params.validate().ok()) << text;  // create() knows no vocab_size
  };
  check(Params().temperature(-0.5f), "temperature: -0.5");
  check(Params().temperature(kInf), "temperature: inf");
  check(Params().temperature(std::nanf("")), "temperature: nan");
  check(Params().top_k(-1), "top_k: -1");
  check(Params().top_p(0.0f), "top_p: 0");
  check(Params().top_p(1.5f), "top_p: 1.5");
  check(Params().top_p(-0.1f), "top_p: -0.1");
  check(Params().top_p(std::nanf("")), "top_p: nan");
  check(Params().repetition_penalty(0.0f), "repetition_penalty: 0");
  check(Params().repetition_penalty(-1.0f), "repetition_penalty: -1");
  check(Params().repetition_penalty(kInf), "repetition_penalty: inf");
  check(Params().stop_ids({3, -2}), "stop_ids: -2");
  check(Params().stop_ids({100}), "stop_ids: 100 is not a token id (vocabulary [0, 100))");
  EXPECT_TRUE(
      SamplingParams(Params().temperature(0.0f).top_k(5).top_p(1.0f).stop_ids({99})).validate(100).ok());
}

TEST(SamplerTest, GreedyTakesTheArgmaxAndTheLowestIdOnATie) {
  Sampler sampler = make(Params().temperature(0.0f));
  EXPECT_EQ(must_sample(sampler, std::vector<float>{0.1f, 2.0f, -1.0f}), 1);
  EXPECT_EQ(must_sample(sampler, std::vector<float>{1.0f, 3.0f, 3.0f, 2.0f}), 1);
  EXPECT_EQ(must_sample(sampler, std::vector<float>{-kInf, -5.0f, -kInf}), 1);
  EXPECT_EQ(must_sample(sampler, std::vector<float>{0.0f, kInf, kInf}), 1);
  EXPECT_EQ(sampler.step(), 4u);
}

TEST(SamplerTest, TopKOneAndATinyTopPAreGreedy) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> logits = random_logits(rng, 1000);
    if (trial % 4 == 0) logits[17] = logits[argmax(logits)];  // a tie: the lowest id must win
    const int32_t greedy = argmax(logits);
    for (const float temperature : {0.3f, 1.0f, 5.0f}) {
      Sampler top_k = make(Params().temperature(temperature).top_k(1).seed(static_cast<uint64_t>(trial)));
      Sampler top_p = make(Params().temperature(temperature).top_p(1e-6f).seed(static_cast<uint64_t>(trial)));
      EXPECT_EQ(must_sample(top_k, logits), greedy);
      EXPECT_EQ(must_sample(top_p, logits), greedy);
    }
  }
}

TEST(SamplerTest, DrawsFollowTheTemperedSoftmax) {
  const std::vector<float> logits = {1.0f, 0.5f, 0.0f, -0.5f, -1.0f, 2.0f, 1.5f, -2.0f};
  constexpr int kDraws = 20000;
  constexpr double kChi2Df7At1e3 = 24.32;  // the 0.999 quantile of chi-square with 7 degrees of freedom
  for (const float temperature : {0.5f, 1.0f, 2.0f}) {
    Sampler sampler = make(Params().temperature(temperature).seed(1234));
    const std::vector<int> counts = histogram(sampler, logits, kDraws);
    EXPECT_LT(chi_square(counts, softmax(logits, temperature), kDraws), kChi2Df7At1e3) << temperature;
    // The test has power: the same counts are far from the untempered (or over-tempered) distribution.
    EXPECT_GT(chi_square(counts, softmax(logits, temperature * 1.5), kDraws), 10 * kChi2Df7At1e3)
        << temperature;
  }
}

TEST(SamplerTest, TopKAndTopPRenormaliseOverTheKeptIds) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f, 3.0f, -1.0f, 0.5f};
  constexpr int kDraws = 20000;
  const std::vector<double> full = softmax(logits, 1.0);

  Sampler top_k = make(Params().top_k(3).seed(5));
  std::vector<int> counts = histogram(top_k, logits, kDraws);
  std::vector<double> expected(logits.size(), 0.0);
  for (const size_t id : {3u, 0u, 1u})
    expected[id] = full[id] / (full[3] + full[0] + full[1]);
  for (size_t id = 0; id < logits.size(); ++id) {
    if (expected[id] == 0) {
      EXPECT_EQ(counts[id], 0) << id;
    }
  }
  EXPECT_LT(chi_square(counts, expected, kDraws), 13.82);  // df 2, 0.999 quantile

  // Sorted: id 3 (0.605), id 0 (0.222), id 1 (0.082), ... With top_p = 0.8, ids 3 and 0 reach 0.827.
  Sampler top_p = make(Params().top_p(0.8f).seed(6));
  counts = histogram(top_p, logits, kDraws);
  expected.assign(logits.size(), 0.0);
  expected[3] = full[3] / (full[3] + full[0]);
  expected[0] = full[0] / (full[3] + full[0]);
  for (size_t id = 0; id < logits.size(); ++id) {
    if (expected[id] == 0) {
      EXPECT_EQ(counts[id], 0) << id;
    }
  }
  EXPECT_LT(chi_square(counts, expected, kDraws), 10.83);  // df 1
}

TEST(SamplerTest, TopPKeepsExactlyTheNucleusOfAFlatDistribution) {
  // A flat distribution over 5000 ids: the nucleus of p = 0.5 holds 2500 of them, the lowest ids on ties.
  const std::vector<float> logits(5000, 0.25f);
  Sampler sampler = make(Params().top_p(0.5f).seed(3));
  int32_t highest = 0;
  for (int i = 0; i < 4000; ++i)
    highest = std::max(highest, must_sample(sampler, logits));
  EXPECT_LT(highest, 2500);
  EXPECT_GT(highest, 2400);
}

// The kept set equals a brute-force one: rank by (logit descending, id ascending), keep top_k, then the
// shortest prefix whose probability reaches top_p of the kept mass.
TEST(SamplerTest, TruncationKeepsExactlyTheBruteForceSet) {
  std::mt19937 rng(10);
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<float> logits = random_logits(rng, 50, 1.5f);
    logits[7] = logits[30];  // a tie across the ranking
    const int32_t top_k = std::array<int32_t, 3>{0, 5, 20}[static_cast<size_t>(trial) % 3];
    const float top_p = std::array<float, 4>{0.3f, 0.7f, 0.95f, 1.0f}[static_cast<size_t>(trial / 3) % 4];

    std::vector<int32_t> ranked(logits.size());
    for (size_t i = 0; i < ranked.size(); ++i)
      ranked[i] = static_cast<int32_t>(i);
    std::sort(ranked.begin(), ranked.end(),
              [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; });
    if (top_k > 0) ranked.resize(static_cast<size_t>(top_k));
    const std::vector<double> p = softmax(logits, 1.0);
    double total = 0;
    for (const int32_t id : ranked)
      total += p[static_cast<size_t>(id)];
    size_t keep = 0;
    double cumulative = 0;
    while (keep < ranked.size() && (keep == 0 || cumulative < top_p * total))
      cumulative += p[static_cast<size_t>(ranked[keep++])];
    std::vector<bool> expected(logits.size(), false);
    for (size_t i = 0; i < keep; ++i)
      expected[static_cast<size_t>(ranked[i])] = true;

    Sampler sampler = make(Params().top_k(top_k).top_p(top_p).seed(static_cast<uint64_t>(trial)));
    std::vector<int> counts(logits.size(), 0);
    for (int draw = 0; draw < 3000; ++draw)
      ++counts[static_cast<size_t>(must_sample(sampler, logits))];
    for (size_t id = 0; id < logits.size(); ++id) {
      if (!expected[id]) {
        EXPECT_EQ(counts[id], 0) << "trial " << trial << " id " << id;
      } else if (p[id] / cumulative > 0.01) {
        EXPECT_GT(counts[id], 0) << "trial " << trial << " id " << id;
      }
    }
  }
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOncePerId) {
  // Positive: 3 / 2 = 1.5 < 2, so id 1 wins.
  Sampler sampler = make(Params().temperature(0.0f).repetition_penalty(2.0f));
  EXPECT_EQ(must_sample(sampler, std::vector<float>{3.0f, 2.0f}, std::vector<int32_t>{0}), 1);
  // Negative: -1 * 2 = -2 < -1.5, so id 1 wins.
  EXPECT_EQ(must_sample(sampler, std::vector<float>{-1.0f, -1.5f}, std::vector<int32_t>{0}), 1);
  // However often an id occurred, it is penalised once: 3 / 2 = 1.5 > 1 (not 3 / 8).
  EXPECT_EQ(must_sample(sampler, std::vector<float>{3.0f, 1.0f}, std::vector<int32_t>{0, 0, 0}), 0);
  // Without the id in the history nothing changes; a penalty below 1 favours repeats.
  EXPECT_EQ(must_sample(sampler, std::vector<float>{3.0f, 2.0f}, std::vector<int32_t>{1}), 0);
  Sampler encourage = make(Params().temperature(0.0f).repetition_penalty(0.5f));
  EXPECT_EQ(must_sample(encourage, std::vector<float>{3.0f, 2.0f}, std::vector<int32_t>{1}), 1);

  // In sampling mode, a repeated id's share drops as the penalty says: logits {1, 1} with id 0 penalised
  // by 2 gives softmax({0.5, 1}).
  Sampler sampled = make(Params().repetition_penalty(2.0f).seed(9));
  std::vector<int> counts(2, 0);
  const std::vector<float> logits = {1.0f, 1.0f};
  const std::vector<int32_t> history = {0, 0};
  for (int i = 0; i < 20000; ++i)
    ++counts[static_cast<size_t>(must_sample(sampled, logits, history))];
  EXPECT_LT(chi_square(counts, softmax({0.5f, 1.0f}, 1.0), 20000), 10.83);
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDifferentTokens) {
  std::mt19937 rng(2);
  std::vector<std::vector<float>> steps;
  for (int i = 0; i < 200; ++i)
    steps.push_back(random_logits(rng, 500, 1.0f));
  const auto run = [&](uint64_t seed) {
    Sampler sampler = make(Params().temperature(0.9f).top_k(50).top_p(0.95f).seed(seed));
    std::vector<int32_t> ids;
    for (const auto& logits : steps)
      ids.push_back(must_sample(sampler, logits, ids));
    return ids;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

// A sequence's tokens depend on its seed and its logits only: not on the other sequences of its batch,
// how often they sample, or in which order.
TEST(SamplerTest, OtherSamplersActivityDoesNotChangeASequence) {
  std::mt19937 rng(3);
  std::vector<std::vector<float>> steps;
  for (int i = 0; i < 100; ++i)
    steps.push_back(random_logits(rng, 300, 1.0f));
  const SamplingParams params = Params().temperature(1.0f).seed(77);

  Sampler alone = make(params);
  std::vector<int32_t> expected;
  for (const auto& logits : steps)
    expected.push_back(must_sample(alone, logits));

  Sampler mine = make(params);
  Sampler same_seed = make(params);
  Sampler other = make(Params().temperature(0.7f).top_k(10).seed(5));
  std::vector<int32_t> got;
  std::mt19937 noise(4);
  for (const auto& logits : steps) {
    for (auto k = noise() % 3; k > 0; --k)
      (void)must_sample(other, random_logits(noise, 300));
    if (noise() % 2) (void)must_sample(same_seed, random_logits(noise, 300));
    got.push_back(must_sample(mine, logits));
  }
  EXPECT_EQ(got, expected);

  // Restarting at step t (after preemption) continues the same stream.
  Sampler resumed = make(params);
  resumed.set_step(60);
  for (size_t t = 60; t < steps.size(); ++t)
    EXPECT_EQ(must_sample(resumed, steps[t]), expected[t]) << t;
}

TEST(SamplerTest, UniformDrawsAreInRangeAndUniform) {
  double sum = 0;
  int below_tenth = 0;
  constexpr int kDraws = 100000;
  for (int i = 0; i < kDraws; ++i) {
    const double u = Sampler::uniform(12345, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    below_tenth += u < 0.1 ? 1 : 0;
  }
  EXPECT_NEAR(sum / kDraws, 0.5, 0.005);
  EXPECT_NEAR(below_tenth, kDraws / 10.0, 500);
  EXPECT_NE(Sampler::uniform(1, 0), Sampler::uniform(2, 0));
}

TEST(SamplerTest, InfiniteAndHugeLogitsAreSafe) {
  Sampler sampler = make(Params().temperature(1.0f).seed(8));
  const float big = std::numeric_limits<float>::max();
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(must_sample(sampler, std::vector<float>{-big, big, 0.0f}), 1);
    const int32_t id = must_sample(sampler, std::vector<float>{-kInf, 1.0f, -kInf, 1.0f});
    EXPECT_TRUE(id == 1 || id == 3) << id;
  }
  // +inf logits share all the probability.
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 2000; ++i)
    ++counts[static_cast<size_t>(must_sample(sampler, std::vector<float>{kInf, 5.0f, kInf}))];
  EXPECT_EQ(counts[1], 0);
  EXPECT_GT(counts[0], 800);
  EXPECT_GT(counts[2], 800);
  // Extreme temperatures: tiny acts as greedy, huge as uniform; neither produces NaN.
  Sampler cold = make(Params().temperature(1e-30f).seed(1));
  Sampler hot = make(Params().temperature(1e30f).seed(1));
  const std::vector<float> logits = {1.0f, 1.5f, -3.0f, 1e20f, -1e20f};
  std::vector<int> hot_counts(logits.size(), 0);
  for (int i = 0; i < 5000; ++i) {
    EXPECT_EQ(must_sample(cold, logits), 3);
    ++hot_counts[static_cast<size_t>(must_sample(hot, logits))];
  }
  for (const int c : hot_counts)
    EXPECT_GT(c, 800);
}

TEST(SamplerTest, BadLogitsAndHistoriesAreErrors) {
  Sampler sampler = make(Params().temperature(0.0f).repetition_penalty(1.2f));
  absl::StatusOr<int32_t> id = sampler.sample(std::vector<float>{0.0f, 1.0f, 2.0f, std::nanf("")}, {});
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(has(id.status(), "id 3 is NaN")) << id.status();
  id = sampler.sample(std::vector<float>{-kInf, -kInf}, {});
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(has(id.status(), "every logit is -inf")) << id.status();
  id = sampler.sample({}, {});
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  id = sampler.sample(std::vector<float>{0.0f, 1.0f}, std::vector<int32_t>{1, 2});
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(has(id.status(), "history id 2 is outside [0, 2)")) << id.status();
  EXPECT_EQ(sampler.step(), 0u);  // failed calls are not steps
  // The sampler still works, and a penalised id from before does not linger.
  EXPECT_EQ(must_sample(sampler, std::vector<float>{2.0f, 1.9f}, std::vector<int32_t>{}), 0);
}

TEST(SamplerTest, StopIds) {
  const Sampler sampler = make(Params().stop_ids({2, 100257}));
  EXPECT_TRUE(sampler.is_stop(2));
  EXPECT_TRUE(sampler.is_stop(100257));
  EXPECT_FALSE(sampler.is_stop(3));
  EXPECT_FALSE(make(SamplingParams()).is_stop(0));
}

}  // namespace
}  // namespace longnet::model
