// UTF-8 helpers with SentencePiece's validity rules (string_util::DecodeUTF8): shortest form only, no
// surrogates, at most U+10FFFF. Shared by the tokenizer's normalizer and the decoders so that both
// agree byte for byte on what counts as a broken sequence.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wai::text {

// Length (1..4) of the valid character at the start of `s`, or 0 when the first byte does not start a
// valid character within `s` (including a sequence cut short by the end of `s`). `s` must be non-empty.
size_t utf8_valid_len(std::string_view s);

// True when `s` (non-empty) is a proper prefix of some valid character: more bytes could complete it.
bool utf8_incomplete_prefix(std::string_view s);

// Appends `s` to `out`, each byte that does not belong to a valid character replaced by U+FFFD.
void append_utf8_sanitized(std::string& out, std::string_view s);

// SentencePiece's OneCharLen: the length its lead byte announces (1 for continuation bytes), not validated.
inline size_t utf8_lead_len(unsigned char c) {
  static constexpr unsigned char kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[c >> 4];
}

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace wai::text
