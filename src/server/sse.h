// Server-Sent Events framing and the Workers AI stream padding.
//
// One event = "data: " + payload + "\n\n". Workers AI events carry "p": a prefix of the repeating
// alphabet "abcdefghijklmnopqrstuvwxyz0123456789" of random length 2..50, so that packet sizes do not
// reveal token lengths (clients ignore it).
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace wai::server {

std::string sse_event(const std::string& payload);  // "data: <payload>\n\n"
constexpr const char* kSseDone = "data: [DONE]\n\n";

class SsePadding {
 public:
  explicit SsePadding(uint64_t seed);
  std::string next();  // length uniform in [2, 50]
  static std::string of_length(size_t n);

 private:
  std::mt19937_64 rng_;
};

}  // namespace wai::server
