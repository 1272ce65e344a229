#pragma once

// Token sampling on a CUDA device: greedy, temperature, top-k and top-p with one uniform draw per row,
// choosing the same token as model::Sampler::sample (model/sampling.cc) for the same logits and draw --
// the same orders (most likely first, lowest id on a tie; id order when nothing truncates), the same
// "reaches p" rule and the same -inf / +inf conventions. Sums run in double in a different order than the
// CPU's, so a draw within ~1e-15 of a boundary between two tokens may pick the neighbour. Repetition
// penalties are not applied here: pass logits that already carry them. CUDA builds only.
#if defined(LONGNET_WITH_CUDA)

#include <cstdint>

namespace longnet::kernels::cuda {

struct SamplingRowParams {
  float temperature = 1.0f;  // 0: greedy
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  double uniform = 0.0;      // the draw in [0, 1): model::Sampler::uniform(seed, step)
};

enum SampleStatus : int32_t {
  kSampleOk = 0,
  kSampleNanLogit = 1,   // id = the first NaN logit's id
  kSampleAllNegInf = 2,  // id = -1
};

// Bytes of device workspace for `rows` rows of `vocab` logits (one double per logit).
constexpr int64_t sample_workspace_bytes(int64_t rows, int64_t vocab) {
  return rows * vocab * static_cast<int64_t>(sizeof(double));
}

// One block per row. logits: rows x vocab floats, `stride` floats apart; params, ids and status: `rows`
// entries each; all device memory. Params must be valid (SamplingParams::validate). Queued on `stream`;
// launch errors stay in the runtime's error state (cudaGetLastError), as for the other void kernels.
void sample_tokens(int64_t rows, int64_t vocab, const float* logits, int64_t stride,
                   const SamplingRowParams* params, int32_t* ids, int32_t* status, void* workspace,
                   void* stream);

}  // namespace longnet::kernels::cuda

#endif  // LONGNET_WITH_CUDA
