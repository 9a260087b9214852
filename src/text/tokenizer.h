// SentencePiece BPE tokenizer built from GGUF metadata (tokenizer.ggml.model = "llama"):
// tokenizer.ggml.tokens / scores / token_type, bos/eos/unk ids, add_bos_token.
//
// Encoding follows SentencePiece (model type BPE, byte fallback, identity normalizer): a dummy prefix
// "▁" is prepended, spaces become "▁", pieces merge by score (higher first, leftmost on ties), and
// characters with no piece fall back to their UTF-8 bytes <0xXX>. Control tokens (<s>, </s>) in the text
// are plain text, not special ids; user-defined tokens match as whole pieces. Decoding turns "▁" into
// spaces, reassembles byte pieces into UTF-8, and strips the leading space of the first piece.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/gguf.h"

namespace wai::text {

enum class TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

class Tokenizer {
 public:
  // Throws wai::Error naming the missing or inconsistent key.
  static Tokenizer from_gguf(const gguf::File& file);

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const;
  std::string decode(std::span<const int32_t> ids) const;  // skips control tokens
  // The bytes one token contributes (byte pieces give one raw byte; "▁" -> ' '); control -> "".
  std::string token_bytes(int32_t id) const;
  const std::string& piece(int32_t id) const;

  int32_t n_vocab() const;
  int32_t bos() const;
  int32_t eos() const;
  int32_t unk() const;
  bool add_bos() const;
  bool is_control(int32_t id) const;
  bool is_eog(int32_t id) const;  // end of generation (eos, eot)

  // (implementation detail members added by the implementer)
};

// Incremental decoding for streaming: feed ids one at a time, get back only complete UTF-8 text.
// Never emits a partial UTF-8 sequence; invalid bytes become U+FFFD once they cannot complete.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(&tok) {}
  std::string push(int32_t id);  // text that became complete with this token (may be empty)
  std::string flush();           // whatever is held back at the end

 private:
  const Tokenizer* tok_;
  std::string pending_;
  bool first_ = true;
};

}  // namespace wai::text
