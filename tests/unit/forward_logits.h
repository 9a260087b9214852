// Shared by the model tests: wai's forward pass over one sequence in chunks of `chunk` tokens
// (separate Forward::run calls), the logits of every position. Tests directory header, not a library
// header.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "model/forward.h"
#include "model/kv/kv_cache.h"
#include "model/model.h"
#include "util/thread_pool.h"

// n_past (optional): the cache's position count afterwards.
inline std::vector<float> forward_logits(const std::shared_ptr<const wai::model::Model>& m, const std::vector<int32_t>& ids,
                                         int64_t chunk, wai::ThreadPool& pool, int64_t* n_past = nullptr) {
  wai::model::Forward f(m, pool);
  wai::model::KvCache cache(m->config(), static_cast<int64_t>(ids.size()));
  wai::model::KvCache* caches[] = {&cache};
  std::vector<float> out;
  for (size_t b = 0; b < ids.size(); b += static_cast<size_t>(chunk)) {
    wai::model::Batch batch;
    for (size_t i = b; i < std::min(ids.size(), b + static_cast<size_t>(chunk)); ++i)
      batch.add(ids[i], static_cast<int32_t>(i), 0, true);
    f.run(batch, caches, out);
  }
  if (n_past) *n_past = cache.n_past();
  return out;
}
