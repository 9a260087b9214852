// SentencePiece BPE tokenizer built from GGUF metadata (tokenizer.ggml.model = "llama"):
// tokenizer.ggml.tokens / scores / token_type, bos/eos/unk ids, add_bos_token.
//
// Encoding follows SentencePiece (model type BPE, byte fallback, identity normalizer): a dummy prefix
// "▁" is prepended, spaces become "▁", pieces merge by score (higher first, leftmost on ties), and
// characters with no piece fall back to their UTF-8 bytes <0xXX>. Control tokens (<s>, </s>) in the text
// are plain text, not special ids; user-defined tokens match as whole pieces. Decoding turns "▁" into
// spaces, reassembles byte pieces into UTF-8, and strips the leading space of the first piece.
//
// Exactly as the reference library (verified against libsentencepiece): only ' ' becomes "▁" (tabs and
// newlines stay bytes); an empty text encodes to nothing (not even the dummy prefix); each byte of
// invalid UTF-8 in the input becomes U+FFFD; unused pieces take part in merges but are emitted as the
// pieces they were merged from. Decoding: control ids are invisible, the unknown id reads " ⁇ ", and a
// byte run that is not valid UTF-8 gives one U+FFFD per bad byte. A literal "▁" in the input decodes
// to ' ', so decode(encode(s)) == s holds for valid UTF-8 without "▁". Encoding is O(n log n).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "format/gguf.h"

namespace wai::text {

enum class TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// A vocabulary as plain arrays (what the GGUF keys hold); pieces, scores and types have one entry per id.
struct Vocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<TokenType> types;
  int32_t bos = 1, eos = 2, unk = 0;
  int32_t eot = -1;               // optional end-of-turn id (-1: none)
  bool add_bos = true;            // tokenizer.ggml.add_bos_token
  bool add_space_prefix = true;   // tokenizer.ggml.add_space_prefix (SentencePiece add_dummy_prefix)
};

class Tokenizer {
 public:
  // Throws wai::Error naming the missing or inconsistent key.
  static Tokenizer from_gguf(const gguf::File& file);
  // Throws wai::Error when the arrays disagree in length, are empty, or a special id is out of range.
  static Tokenizer from_vocab(Vocab vocab);

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const;
  // Text that continues earlier tokens: no dummy prefix, no BOS (e.g. a separator after a turn whose
  // ids are already known: "\n" -> <0x0A>, not "▁" <0x0A>).
  std::vector<int32_t> encode_continuation(std::string_view text) const;
  std::string decode(std::span<const int32_t> ids) const;  // skips control tokens
  // The bytes one token contributes (byte pieces give one raw byte; "▁" -> ' '); control -> "".
  std::string token_bytes(int32_t id) const;
  const std::string& piece(int32_t id) const;

  int32_t n_vocab() const;
  int32_t bos() const;
  int32_t eos() const;
  int32_t unk() const;
  bool add_bos() const;
  bool add_space_prefix() const { return v_.add_space_prefix; }
  bool is_control(int32_t id) const;
  bool is_eog(int32_t id) const;  // end of generation (eos, eot)

  TokenType type(int32_t id) const;
  float score(int32_t id) const;
  // The byte a <0xXX> piece stands for, or -1.
  int byte_value(int32_t id) const;

 private:
  // Heterogeneous lookup: find by string_view without building a std::string.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using PieceMap = std::unordered_map<std::string, int32_t, Hash, std::equal_to<>>;

  void check_id(int32_t id) const;  // throws wai::Error for an id outside [0, n_vocab)
  // SentencePiece's identity normalizer: invalid UTF-8 bytes -> U+FFFD (one per byte), ' ' -> "▁",
  // dummy prefix. Returns "" for "".
  std::string normalize(std::string_view text, bool space_prefix) const;
  std::vector<int32_t> encode_impl(std::string_view text, bool add_bos, bool space_prefix) const;
  // Longest user-defined piece that prefixes `s` (0: none).
  size_t match_user_defined(std::string_view s) const;
  int32_t lookup(std::string_view piece) const;  // reserved first, then mergeable; -1 when absent

  Vocab v_;
  PieceMap mergeable_;  // normal, user-defined, unused: what BPE may produce (SentencePiece pieces_)
  PieceMap reserved_;   // control, unknown, byte (SentencePiece reserved_id_map_)
  std::array<int32_t, 256> byte_id_{};   // <0xXX> ids, -1 when missing
  std::vector<int16_t> byte_of_;         // per id: byte value of a byte piece, or -1
  bool byte_fallback_ = false;           // all 256 byte pieces present
  std::vector<std::string> user_defined_;  // sorted longest first
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
