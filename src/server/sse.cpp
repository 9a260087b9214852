#include "server/sse.h"

namespace wai::server {

std::string sse_event(const std::string& payload) { return "data: " + payload + "\n\n"; }

SsePadding::SsePadding(uint64_t seed) : rng_(seed) {}

std::string SsePadding::of_length(size_t n) {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(n, 'a');
  for (size_t i = 0; i < n; ++i) s[i] = kAlphabet[i % 36];
  return s;
}

std::string SsePadding::next() { return of_length(2 + rng_() % 49); }

}  // namespace wai::server
