// Stop-sequence matching over streamed text. Text that could be the start of a stop sequence is held
// back until it is known not to be one; on a match, the text before the stop string is released and
// generation ends (the stop string itself is not emitted, as in OpenAI / llama-server).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace wai::text {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  struct Result {
    std::string emit;  // safe to send now
    bool stopped = false;
  };
  // After a match, further pushes return {"", true}. Empty stop strings are ignored.
  Result push(std::string_view text);
  std::string flush();  // held-back text at the end of generation (no match); "" after a match

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace wai::text
