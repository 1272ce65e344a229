#pragma once

#include <cstdint>

#include "longnet/kernels/host_device.h"

// The index math of LongNet dilated attention (../shared/design/LONGNET.md), shared by every backend.
// A branch (w, r) cuts a sequence into segments of w tokens aligned to position 0; inside a segment,
// head h sees the tokens whose position p (relative to the segment start) satisfies p % r == o(h).
namespace longnet::kernels {

struct DilatedBranch {
  int64_t segment_length = 0;  // w
  int64_t dilation = 1;        // r
};

LONGNET_HOST_DEVICE int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// torchscale's head-offset map: o(h) = floor(h / ceil(H / r)). Checkpoints depend on it.
LONGNET_HOST_DEVICE int64_t head_offset(int64_t head, int64_t num_heads, int64_t dilation) {
  return head / ceil_div(num_heads, dilation);
}

// The branch's segment length for a sequence of `seq_len` tokens: min(w, N).
LONGNET_HOST_DEVICE int64_t effective_segment_length(int64_t segment_length, int64_t seq_len) {
  return segment_length < seq_len ? segment_length : seq_len;
}

LONGNET_HOST_DEVICE int64_t num_segments(int64_t seq_len, int64_t segment_length) {
  return ceil_div(seq_len, segment_length);
}

// Number of positions p in [0, segment_size) with p % r == offset: the tokens one head sees in a segment
// of `segment_size` real tokens (the last segment of a sequence may be short).
LONGNET_HOST_DEVICE int64_t visible_count(int64_t segment_size, int64_t dilation, int64_t offset) {
  return segment_size > offset ? (segment_size - offset + dilation - 1) / dilation : 0;
}

// Absolute position of the j-th visible token of segment `segment` for a head with `offset`.
LONGNET_HOST_DEVICE int64_t visible_position(int64_t segment, int64_t segment_length, int64_t dilation,
                                             int64_t offset, int64_t j) {
  return segment * segment_length + offset + j * dilation;
}

// True when token t is a query and key of (branch, head).
LONGNET_HOST_DEVICE bool is_visible(int64_t t, int64_t segment_length, int64_t dilation, int64_t offset) {
  return (t % segment_length) % dilation == offset;
}

}  // namespace longnet::kernels
