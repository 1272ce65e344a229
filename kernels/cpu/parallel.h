#pragma once

#include <algorithm>
#include <cstdint>

#include "longnet/kernels/thread_pool.h"

namespace longnet::kernels::cpu {

// Splits `rows` rows of `row_cost` elements each into blocks of about kElementsPerTask elements and runs
// fn(begin, end) on the pool for each block. Blocks that small keep dispatch overhead (a few
// microseconds) well under the work, and still give every thread a share on model-sized inputs.
template <typename Fn>
void parallel_rows(ThreadPool& pool, int64_t rows, int64_t row_cost, const Fn& fn) {
  constexpr int64_t kElementsPerTask = 16384;
  const int64_t rows_per_task = std::max<int64_t>(1, kElementsPerTask / std::max<int64_t>(1, row_cost));
  const int64_t tasks = (rows + rows_per_task - 1) / rows_per_task;
  pool.parallel_for(tasks, [&](int64_t task, int /*thread*/) {
    const int64_t begin = task * rows_per_task;
    fn(begin, std::min(rows, begin + rows_per_task));
  });
}

}  // namespace longnet::kernels::cpu
