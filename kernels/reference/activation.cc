#include "longnet/kernels/activation.h"

#include <cmath>
#include <cstdint>

namespace longnet::kernels::reference {
namespace {

// x/2 * (1 + erf(x/sqrt2)), written with erfc so the negative tail keeps its relative accuracy; the limit
// at -inf is 0 (the formula would give -inf * 0 = NaN).
float gelu(float x) {
  if (std::isinf(x) && x < 0) return -0.0f;
  const double xd = x;
  return static_cast<float>(0.5 * xd * std::erfc(-xd / std::sqrt(2.0)));
}

float relu(float x) {
  return x < 0.0f ? 0.0f : x;
}  // NaN stays NaN

}  // namespace

void activation(Activation act, float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    x[i] = act == Activation::kGelu ? gelu(x[i]) : relu(x[i]);
  }
}

}  // namespace longnet::kernels::reference
