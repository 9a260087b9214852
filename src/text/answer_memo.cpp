#include "text/answer_memo.h"

namespace wai::text {

AnswerMemo::AnswerMemo(size_t max_entries, size_t max_bytes) : max_entries_(max_entries), max_bytes_(max_bytes) {}

void AnswerMemo::remember(std::string text, std::vector<int32_t> ids) {
  if (text.empty() || ids.empty()) return;
  Entry e{std::move(text), std::move(ids)};
  if (e.bytes() > max_bytes_ || max_entries_ == 0) return;
  std::lock_guard lk(mu_);
  if (auto it = by_text_.find(e.text); it != by_text_.end()) {  // replace: the newest ids win
    const List::iterator node = it->second;
    bytes_ -= node->bytes();
    by_text_.erase(it);  // the key views node->text: erase it before the node
    lru_.erase(node);
  }
  lru_.push_front(std::move(e));
  by_text_.emplace(std::string_view(lru_.front().text), lru_.begin());
  bytes_ += lru_.front().bytes();
  evict_locked();
}

void AnswerMemo::evict_locked() {
  while (!lru_.empty() && (lru_.size() > max_entries_ || bytes_ > max_bytes_)) {
    const Entry& last = lru_.back();
    bytes_ -= last.bytes();
    by_text_.erase(std::string_view(last.text));
    lru_.pop_back();
  }
}

std::optional<std::vector<int32_t>> AnswerMemo::find(std::string_view text) const {
  std::lock_guard lk(mu_);
  auto it = by_text_.find(text);
  if (it == by_text_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);  // iterators stay valid
  return it->second->ids;
}

size_t AnswerMemo::size() const {
  std::lock_guard lk(mu_);
  return lru_.size();
}

size_t AnswerMemo::bytes() const {
  std::lock_guard lk(mu_);
  return bytes_;
}

}  // namespace wai::text
