// libFuzzer target: the tokenizer (mistral-v0.1-vocab.gguf, loaded once) on arbitrary bytes.
// Checked properties (__builtin_trap on violation): encode never crashes and yields ids in range;
// decode output is always valid UTF-8; decode(encode(s)) == s for valid UTF-8 without a literal "▁"
// (SentencePiece's space symbol, which decodes to ' '); streaming decode == decode; and decode of an
// arbitrary id sequence taken from the input bytes agrees with the streaming decoder.
// The vocab is found through $WAI_SHARED_DIR, else the shared/ folder baked in at build time
// (scripts/run-fuzzer.sh runs the fuzzer in a scratch directory).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "format/gguf.h"
#include "text/tokenizer.h"
#include "text/utf8.h"
#include "util/error.h"

#ifndef WAI_SHARED_DIR
#define WAI_SHARED_DIR "../shared"
#endif

namespace {

using wai::text::Tokenizer;

const Tokenizer& tokenizer() {
  static const Tokenizer* tok = [] {
    const char* env = std::getenv("WAI_SHARED_DIR");
    const std::string dir = env && *env ? env : WAI_SHARED_DIR;
    const std::string path = dir + "/testdata/tokenizer/mistral-v0.1-vocab.gguf";
    try {
      static const wai::gguf::File file = wai::gguf::File::open(path);
      return new Tokenizer(Tokenizer::from_gguf(file));
    } catch (const wai::Error& e) {
      std::fprintf(stderr, "fuzz_text_tokenizer: cannot load %s: %s (set WAI_SHARED_DIR)\n", path.c_str(), e.what());
      std::abort();
    }
  }();
  return *tok;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = wai::text::utf8_valid_len(s.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  wai::text::StreamDecoder sd(tok);
  std::string out;
  for (const auto id : ids) {
    const std::string chunk = sd.push(id);
    if (!valid_utf8(chunk)) __builtin_trap();  // never a partial character
    out += chunk;
  }
  return out + sd.flush();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizer& tok = tokenizer();
  const std::string_view s(reinterpret_cast<const char*>(data), size);

  const std::vector<int32_t> ids = tok.encode(s, true);
  for (const auto id : ids)
    if (id < 0 || id >= tok.n_vocab()) __builtin_trap();
  const std::string text = tok.decode(ids);
  if (!valid_utf8(text)) __builtin_trap();
  if (valid_utf8(s) && s.find("\xE2\x96\x81") == std::string_view::npos && text != s) __builtin_trap();
  if (stream(tok, ids) != text) __builtin_trap();

  // The input bytes as an id sequence (pairs of bytes, mod n_vocab): decode and stream must agree.
  std::vector<int32_t> raw;
  for (size_t i = 0; i + 1 < size; i += 2) raw.push_back(((data[i] << 8) | data[i + 1]) % tok.n_vocab());
  const std::string raw_text = tok.decode(raw);
  if (!valid_utf8(raw_text) || stream(tok, raw) != raw_text) __builtin_trap();
  return 0;
}
