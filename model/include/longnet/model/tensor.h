#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "longnet/model/dtype.h"
#include "longnet/model/memory_pool.h"

namespace longnet::model {

inline constexpr int kMaxRank = 8;

// Sizes or strides of a tensor, in elements. Never longer than kMaxRank, so it never leaves the stack.
using Dims = absl::InlinedVector<int64_t, kMaxRank>;

std::string dims_to_string(absl::Span<const int64_t> dims);  // "[2, 3, 4]"

// A strided view of elements on one device. Tensor is a handle: copies and views (reshape, slice, select)
// share the elements, and `const` protects only the handle, as with a pointer. Storage is either owned
// (a pool block shared by every view of it, returned to its pool when the last view goes) or borrowed
// (memory someone else owns, e.g. a memory-mapped weight file, optionally kept alive by `keep_alive`).
class Tensor {
 public:
  Tensor() = default;  // shape [0], float32, cpu, no elements

  // A contiguous, uninitialised tensor in a block of `allocator`, on the allocator's device.
  static absl::StatusOr<Tensor> empty(absl::Span<const int64_t> shape, DType dtype, Allocator& allocator);

  // A contiguous view of `data`, which must stay valid (and, if read-only, unwritten) while any view of
  // it lives; `keep_alive`, if given, is held by every view to ensure that.
  static absl::StatusOr<Tensor> borrow(void* data, absl::Span<const int64_t> shape, DType dtype,
                                       Device device, std::shared_ptr<const void> keep_alive = nullptr);

  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[normalize(i)]; }       // negative i counts from the end
  int64_t stride(int i) const { return strides_[normalize(i)]; }  // in elements
  absl::Span<const int64_t> shape() const { return shape_; }
  absl::Span<const int64_t> strides() const { return strides_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;  // row-major, no gaps; strides of size-1 dims do not matter
  bool owns_storage() const { return owned_; }
  std::string to_string() const;  // "Tensor(float32, [2, 3], cpu)"

  void* raw_data() const { return data_; }
  // The first element as T; T must fit the dtype (see dtype_holds), checked in debug builds.
  template <typename T>
  T* data() const {
    assert(dtype_holds<T>(dtype_) && "Tensor::data<T>: T does not match the dtype");
    return reinterpret_cast<T*>(data_);
  }

  // Same elements, new shape (one size may be -1: inferred). Contiguous tensors only.
  absl::StatusOr<Tensor> reshape(absl::Span<const int64_t> shape) const;
  // Elements start, start + step, ... below stop along `dim`; 0 <= start <= stop <= dim(dim), step >= 1.
  absl::StatusOr<Tensor> slice(int dim, int64_t start, int64_t stop, int64_t step = 1) const;
  // The sub-tensor at `index` along `dim`, which disappears from the shape.
  absl::StatusOr<Tensor> select(int dim, int64_t index) const;

 private:
  int normalize(int i) const {
    assert(i >= -rank() && i < rank() && "Tensor: dimension out of range");
    return i < 0 ? i + rank() : i;
  }
  absl::StatusOr<int> checked_dim(int dim, const char* op) const;
  std::byte* offset_by(int64_t elements) const;

  Dims shape_{0};
  Dims strides_{1};
  DType dtype_ = DType::kF32;
  Device device_;
  std::byte* data_ = nullptr;
  std::shared_ptr<const void> storage_;  // a PoolBuffer when owned; the keep-alive when borrowed
  bool owned_ = false;
};

}  // namespace longnet::model
