#include "text/utf8.h"

#include <cstdint>

namespace wai::text {

namespace {

bool is_trail(unsigned char c) { return (c & 0xC0) == 0x80; }
bool valid_cp(uint32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); }

}  // namespace

size_t utf8_valid_len(std::string_view s) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  if (n == 0) return 0;
  if (b[0] < 0x80) return 1;
  if (n >= 2 && (b[0] & 0xE0) == 0xC0) {
    const uint32_t cp = ((b[0] & 0x1Fu) << 6) | (b[1] & 0x3Fu);
    if (is_trail(b[1]) && cp >= 0x80 && valid_cp(cp)) return 2;
  } else if (n >= 3 && (b[0] & 0xF0) == 0xE0) {
    const uint32_t cp = ((b[0] & 0x0Fu) << 12) | ((b[1] & 0x3Fu) << 6) | (b[2] & 0x3Fu);
    if (is_trail(b[1]) && is_trail(b[2]) && cp >= 0x800 && valid_cp(cp)) return 3;
  } else if (n >= 4 && (b[0] & 0xF8) == 0xF0) {
    const uint32_t cp = ((b[0] & 0x07u) << 18) | ((b[1] & 0x3Fu) << 12) | ((b[2] & 0x3Fu) << 6) | (b[3] & 0x3Fu);
    if (is_trail(b[1]) && is_trail(b[2]) && is_trail(b[3]) && cp >= 0x10000 && valid_cp(cp)) return 4;
  }
  return 0;
}

bool utf8_incomplete_prefix(std::string_view s) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  if (n == 0) return false;
  size_t need;
  if (b[0] >= 0xC2 && b[0] <= 0xDF) need = 2;
  else if (b[0] >= 0xE0 && b[0] <= 0xEF) need = 3;
  else if (b[0] >= 0xF0 && b[0] <= 0xF4) need = 4;
  else return false;  // ASCII, continuation byte, C0/C1 (overlong), F5..FF
  if (n >= need) return false;
  for (size_t i = 1; i < n; ++i)
    if (!is_trail(b[i])) return false;
  if (n >= 2) {  // second-byte ranges that rule out overlongs, surrogates and > U+10FFFF
    if (b[0] == 0xE0 && b[1] < 0xA0) return false;
    if (b[0] == 0xED && b[1] >= 0xA0) return false;
    if (b[0] == 0xF0 && b[1] < 0x90) return false;
    if (b[0] == 0xF4 && b[1] >= 0x90) return false;
  }
  return true;
}

void append_utf8_sanitized(std::string& out, std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t len = utf8_valid_len(s.substr(i));
    if (len == 0) {
      out += kReplacementChar;
      ++i;
    } else {
      out.append(s.data() + i, len);
      i += len;
    }
  }
}

}  // namespace wai::text
