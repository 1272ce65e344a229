#pragma once

// Marks small inline functions that both backends use: plain inline functions on the host, and
// __host__ __device__ functions when compiled by nvcc.
#if defined(__CUDACC__)
#define LONGNET_HOST_DEVICE __host__ __device__ inline
#else
#define LONGNET_HOST_DEVICE inline
#endif
