// The token ids behind answers the model generated, so that a chat template can render an earlier
// assistant turn as the exact tokens the model produced rather than a re-tokenization of its text.
//
// Why: the prefix cache matches on tokens. A client sends each earlier answer back as text; encoding
// that text need not give the ids that were generated (the model may emit " Hel" "lo" where the
// tokenizer would pick " Hello"), and one differing id makes every later position miss. With the
// memo, turn n+1 renders as turn n's prompt + the generated ids (+ EOS), whose K/V the engine has kept.
//
// Contract: remember(text, ids) only when tok.decode(ids) == text (the caller checks; see GenJob),
// so using the ids in place of encode(text) never changes the conversation's text. Lookup is by the
// exact text. Bounded: at most `max_entries` answers and `max_bytes` of text + ids, least recently
// used dropped first. Thread-safe (one mutex; lookups are a hash probe and a list splice).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wai::text {

class AnswerMemo {
 public:
  explicit AnswerMemo(size_t max_entries = 4096, size_t max_bytes = size_t{32} << 20);

  void remember(std::string text, std::vector<int32_t> ids);
  // The ids last remembered for exactly `text`; marks the entry recently used.
  std::optional<std::vector<int32_t>> find(std::string_view text) const;

  size_t size() const;
  size_t bytes() const;

 private:
  struct Entry {
    std::string text;
    std::vector<int32_t> ids;
    size_t bytes() const { return text.size() + ids.size() * sizeof(int32_t); }
  };
  using List = std::list<Entry>;  // front = most recently used

  void evict_locked();

  size_t max_entries_, max_bytes_;
  mutable std::mutex mu_;
  mutable List lru_;
  std::unordered_map<std::string_view, List::iterator> by_text_;  // keys view into the entries' text
  size_t bytes_ = 0;
};

}  // namespace wai::text
