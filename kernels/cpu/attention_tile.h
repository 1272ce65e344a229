#pragma once

#include <cstdint>

// The inner loops of the CPU dilated-attention kernel, on packed tiles of one head's dilated rows of one
// segment (see dilated_attention.cc for the packing).
namespace longnet::kernels::cpu {

// Tile geometry. Query tiles are kQueryTile rows (a multiple of kMicroRows); key blocks are kKeyBlock
// keys (a multiple of kKeyStrip). Keys are packed in strips of kKeyStrip: strip s holds, for every
// dimension d, the kKeyStrip values k[s*kKeyStrip + c][d] contiguously, so the score micro-kernel reads
// one contiguous 16-float vector per d. Value rows and output rows are padded to a multiple of
// kKeyStrip floats. Three implementations, chosen at run time: AVX-512, AVX2/FMA, portable C++.
inline constexpr int64_t kMicroRows = 12;  // row padding: a whole number of every backend's row blocks
inline constexpr int64_t kKeyStrip = 16;
inline constexpr int64_t kQueryTile = 48;
inline constexpr int64_t kKeyBlock = 128;

struct AttentionTileOps {
  // scores[i][c] = sum_d q[i][d] * k_strips[c / 16][d][c % 16] for i < rows, c < strips * 16.
  // rows is a multiple of kMicroRows; q rows are head_dim floats apart; scores rows ld_scores apart.
  void (*scores)(const float* q, int64_t rows, int64_t head_dim, const float* k_strips, int64_t strips,
                 float* scores, int64_t ld_scores);

  // Online-softmax step for one key block. Row i's valid keys are its first limit[i] columns (the rest
  // are masked out: padding, or later positions under causal masking; limit may be <= 0). Turns the
  // row's scores into probabilities in place (masked columns become exactly 0, up to `cols`), updates
  // the running max m[i] and sum l[i], and rescales the output row acc[i] (dim_padded floats) when the
  // max moves.
  void (*softmax_step)(float* scores, int64_t rows, int64_t cols, int64_t ld_scores, const int64_t* limit,
                       float* m, float* l, float* acc, int64_t dim_padded);

  // acc[i][c] += sum_j p[i][j] * v[j][c] for i < rows (multiple of kMicroRows), j < keys (multiple of
  // kKeyStrip), c < dim_padded (multiple of kKeyStrip); v rows are dim_padded floats apart.
  void (*accumulate_values)(const float* p, int64_t rows, int64_t keys, int64_t ld_p, const float* v,
                            float* acc, int64_t dim_padded);
};

const AttentionTileOps& attention_tile_ops_avx512();
const AttentionTileOps& attention_tile_ops_avx2();
const AttentionTileOps& attention_tile_ops_generic();

}  // namespace longnet::kernels::cpu
