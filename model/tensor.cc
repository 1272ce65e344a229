#include "longnet/model/tensor.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace longnet::model {

namespace {

// Checks rank and sizes, and that the byte count of the elements fits in int64_t.
absl::StatusOr<int64_t> checked_numel(absl::Span<const int64_t> shape, DType dtype, const char* op) {
  if (shape.size() > static_cast<size_t>(kMaxRank)) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": shape ", dims_to_string(shape), " has rank ",
                                                   shape.size(), ", more than ", kMaxRank));
  }
  int64_t numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat(op, ": shape ", dims_to_string(shape),
                                                     " has negative size ", shape[i], " at dim ", i));
    }
    if (__builtin_mul_overflow(numel, shape[i], &numel)) {
      return absl::InvalidArgumentError(
          absl::StrCat(op, ": shape ", dims_to_string(shape), " has too many elements"));
    }
  }
  int64_t bytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(dtype_size(dtype)), &bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": shape ", dims_to_string(shape), " has too many bytes"));
  }
  return numel;
}

Dims contiguous_strides(absl::Span<const int64_t> shape) {
  Dims strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

}  // namespace

std::string dims_to_string(absl::Span<const int64_t> dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

absl::StatusOr<Tensor> Tensor::empty(absl::Span<const int64_t> shape, DType dtype, Allocator& allocator) {
  absl::StatusOr<int64_t> numel = checked_numel(shape, dtype, "Tensor::empty");
  if (!numel.ok()) return numel.status();
  absl::StatusOr<PoolBuffer> buffer = allocator.allocate(static_cast<size_t>(*numel) * dtype_size(dtype));
  if (!buffer.ok()) return buffer.status();

  Tensor t;
  t.shape_.assign(shape.begin(), shape.end());
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.device_ = allocator.device();
  t.data_ = static_cast<std::byte*>(buffer->data());
  t.storage_ = std::make_shared<const PoolBuffer>(*std::move(buffer));
  t.owned_ = true;
  return t;
}

absl::StatusOr<Tensor> Tensor::borrow(void* data, absl::Span<const int64_t> shape, DType dtype, Device device,
                                      std::shared_ptr<const void> keep_alive) {
  absl::StatusOr<int64_t> numel = checked_numel(shape, dtype, "Tensor::borrow");
  if (!numel.ok()) return numel.status();
  if (data == nullptr && *numel != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Tensor::borrow: data is null for shape ", dims_to_string(shape)));
  }
  Tensor t;
  t.shape_.assign(shape.begin(), shape.end());
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  t.data_ = static_cast<std::byte*>(data);
  t.storage_ = std::move(keep_alive);
  return t;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t size : shape_)
    n *= size;
  return n;
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

std::string Tensor::to_string() const {
  return absl::StrCat("Tensor(", std::string(dtype_name(dtype_)), ", ", dims_to_string(shape_), ", ",
                      device_.to_string(), ")");
}

absl::StatusOr<int> Tensor::checked_dim(int dim, const char* op) const {
  if (dim < -rank() || dim >= rank()) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": dim ", dim, " is out of range for ", to_string()));
  }
  return dim < 0 ? dim + rank() : dim;
}

std::byte* Tensor::offset_by(int64_t elements) const {
  // A null data pointer means no elements, and then no view of it has any either.
  if (data_ == nullptr) return nullptr;
  return data_ + elements * static_cast<int64_t>(dtype_size(dtype_));
}

absl::StatusOr<Tensor> Tensor::reshape(absl::Span<const int64_t> shape) const {
  if (!is_contiguous()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Tensor::reshape: ", to_string(), " is not contiguous (strides ", dims_to_string(strides_), ")"));
  }
  Dims resolved(shape.begin(), shape.end());
  int inferred = -1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] != -1) continue;
    if (inferred >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("Tensor::reshape: shape ", dims_to_string(shape), " has more than one -1"));
    }
    inferred = static_cast<int>(i);
    resolved[i] = 1;
  }
  absl::StatusOr<int64_t> known = checked_numel(resolved, dtype_, "Tensor::reshape");
  if (!known.ok()) return known.status();
  const int64_t total = numel();
  if (inferred >= 0) {
    if (*known == 0 || total % *known != 0) {
      return absl::InvalidArgumentError(absl::StrCat("Tensor::reshape: cannot infer the -1 in ",
                                                     dims_to_string(shape), " for ", total, " elements"));
    }
    resolved[static_cast<size_t>(inferred)] = total / *known;
  } else if (*known != total) {
    return absl::InvalidArgumentError(absl::StrCat("Tensor::reshape: shape ", dims_to_string(shape), " has ",
                                                   *known, " elements, ", to_string(), " has ", total));
  }
  Tensor t = *this;
  t.strides_ = contiguous_strides(resolved);
  t.shape_ = std::move(resolved);
  return t;
}

absl::StatusOr<Tensor> Tensor::slice(int dim, int64_t start, int64_t stop, int64_t step) const {
  absl::StatusOr<int> d = checked_dim(dim, "Tensor::slice");
  if (!d.ok()) return d.status();
  const int64_t size = shape_[*d];
  if (start < 0 || start > stop || stop > size || step < 1) {
    return absl::InvalidArgumentError(absl::StrCat("Tensor::slice: range [", start, ", ", stop, ") step ",
                                                   step, " is invalid for dim ", *d, " of ", to_string()));
  }
  Tensor t = *this;
  t.data_ = offset_by(start * strides_[*d]);
  t.shape_[*d] = (stop - start + step - 1) / step;
  t.strides_[*d] *= step;
  return t;
}

absl::StatusOr<Tensor> Tensor::select(int dim, int64_t index) const {
  absl::StatusOr<int> d = checked_dim(dim, "Tensor::select");
  if (!d.ok()) return d.status();
  if (index < 0 || index >= shape_[*d]) {
    return absl::InvalidArgumentError(
        absl::StrCat("Tensor::select: index ", index, " is out of range for dim ", *d, " of ", to_string()));
  }
  Tensor t = *this;
  t.data_ = offset_by(index * strides_[*d]);
  t.shape_.erase(t.shape_.begin() + *d);
  t.strides_.erase(t.strides_.begin() + *d);
  return t;
}

}  // namespace longnet::model
