#include "model/kv_cache.h"

#include <algorithm>

#include "util/error.h"

namespace wai::model {

KvCache::KvCache(const Config& cfg, int64_t max_positions)
    : window_(cfg.sliding_window),
      max_positions_(max_positions),
      kv_dim_(cfg.n_kv_heads * cfg.head_dim),
      n_kv_heads_(cfg.n_kv_heads),
      head_dim_(cfg.head_dim),
      n_layers_(cfg.n_layers) {
  if (max_positions <= 0) invalid("kv cache: max_positions must be positive, got " + std::to_string(max_positions));
  if (window_ < 0) invalid("kv cache: negative sliding window");
  capacity_ = window_ > 0 ? std::min(window_, max_positions) : max_positions;
  const size_t n = static_cast<size_t>(n_layers_ * capacity_ * kv_dim_);
  try {
    k_.assign(n, 0);
    v_.assign(n, 0);
  } catch (const std::bad_alloc&) {
    fail(ErrorKind::kResource, "kv cache: cannot allocate " + std::to_string(2 * n * sizeof(uint16_t)) + " bytes");
  }
}

int64_t KvCache::bytes() const { return static_cast<int64_t>((k_.size() + v_.size()) * sizeof(uint16_t)); }

}  // namespace wai::model
