// SentencePiece BPE encoding and decoding (see tokenizer.h). The encoder is a transcription of
// SentencePiece 0.1.9x bpe::Model::Encode and SentencePieceProcessor's byte fallback, so that ids match
// the reference library exactly: the text is split into characters (user-defined pieces are single,
// frozen symbols), then adjacent symbol pairs whose concatenation is a piece are merged, best score
// first and leftmost on ties, with a priority queue over a linked list of symbols: O(n log n).
#include "text/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <queue>
#include <utility>

#include "text/utf8.h"
#include "util/error.h"

namespace wai::text {

namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";   // "▁" U+2581
constexpr std::string_view kUnknownSurface = " \xE2\x81\x87 ";  // " ⁇ ", SentencePiece's unk surface

// "<0xXX>" -> XX, else -1.
int parse_byte_piece(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = p[i];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}

// "▁" -> ' ' everywhere in `p`, appended to `out`.
void append_unescaped(std::string& out, std::string_view p) {
  size_t i = 0;
  while (i < p.size()) {
    if (p.compare(i, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
      out += ' ';
      i += kSpaceSymbol.size();
    } else {
      out += p[i++];
    }
  }
}

}  // namespace

Tokenizer Tokenizer::from_vocab(Vocab v) {
  const size_t n = v.pieces.size();
  if (n == 0) invalid("tokenizer: empty vocabulary");
  if (n > static_cast<size_t>(INT32_MAX)) invalid("tokenizer: vocabulary too large");
  if (v.scores.empty()) v.scores.assign(n, 0.0f);
  if (v.types.empty()) v.types.assign(n, TokenType::kNormal);
  if (v.scores.size() != n)
    invalid("tokenizer: " + std::to_string(v.scores.size()) + " scores for " + std::to_string(n) + " tokens");
  if (v.types.size() != n)
    invalid("tokenizer: " + std::to_string(v.types.size()) + " token types for " + std::to_string(n) + " tokens");
  const auto in_range = [n](int32_t id) { return id >= 0 && static_cast<size_t>(id) < n; };
  if (!in_range(v.bos)) invalid("tokenizer: bos id " + std::to_string(v.bos) + " out of range");
  if (!in_range(v.eos)) invalid("tokenizer: eos id " + std::to_string(v.eos) + " out of range");
  if (v.unk != -1 && !in_range(v.unk)) invalid("tokenizer: unk id " + std::to_string(v.unk) + " out of range");
  if (v.eot != -1 && !in_range(v.eot)) invalid("tokenizer: eot id " + std::to_string(v.eot) + " out of range");

  Tokenizer t;
  t.byte_id_.fill(-1);
  t.byte_of_.assign(n, -1);
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    const int32_t raw = static_cast<int32_t>(v.types[i]);
    if (raw == 0) v.types[i] = TokenType::kNormal;  // llama.cpp's "undefined"
    else if (raw < 1 || raw > 6) invalid("tokenizer: token " + std::to_string(i) + " has unknown type " + std::to_string(raw));
    if (std::isnan(v.scores[i])) v.scores[i] = -INFINITY;  // keeps the merge order a strict weak order
    const std::string& p = v.pieces[i];
    switch (v.types[i]) {
      case TokenType::kNormal:
      case TokenType::kUserDefined:
      case TokenType::kUnused:
        if (!p.empty()) t.mergeable_.emplace(p, id);  // first occurrence wins on duplicates
        if (v.types[i] == TokenType::kUserDefined && !p.empty()) t.user_defined_.push_back(p);
        break;
      case TokenType::kByte: {
        const int b = parse_byte_piece(p);
        if (b < 0) invalid("tokenizer: byte token " + std::to_string(i) + " is not <0xXX>");
        t.byte_of_[i] = static_cast<int16_t>(b);
        if (t.byte_id_[b] < 0) t.byte_id_[b] = id;
        t.reserved_.emplace(p, id);
        break;
      }
      case TokenType::kUnknown:
        if (v.unk == -1) v.unk = id;
        t.reserved_.emplace(p, id);
        break;
      case TokenType::kControl:
        t.reserved_.emplace(p, id);
        break;
    }
  }
  t.byte_fallback_ = std::all_of(t.byte_id_.begin(), t.byte_id_.end(), [](int32_t id) { return id >= 0; });
  std::sort(t.user_defined_.begin(), t.user_defined_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  t.v_ = std::move(v);
  return t;
}

int32_t Tokenizer::n_vocab() const { return static_cast<int32_t>(v_.pieces.size()); }
int32_t Tokenizer::bos() const { return v_.bos; }
int32_t Tokenizer::eos() const { return v_.eos; }
int32_t Tokenizer::unk() const { return v_.unk; }
bool Tokenizer::add_bos() const { return v_.add_bos; }

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= n_vocab())
    invalid("tokenizer: token id " + std::to_string(id) + " out of range [0, " + std::to_string(n_vocab()) + ")");
}

TokenType Tokenizer::type(int32_t id) const {
  check_id(id);
  return v_.types[id];
}
float Tokenizer::score(int32_t id) const {
  check_id(id);
  return v_.scores[id];
}
int Tokenizer::byte_value(int32_t id) const {
  check_id(id);
  return byte_of_[id];
}
const std::string& Tokenizer::piece(int32_t id) const {
  check_id(id);
  return v_.pieces[id];
}
bool Tokenizer::is_control(int32_t id) const { return id >= 0 && id < n_vocab() && v_.types[id] == TokenType::kControl; }
bool Tokenizer::is_eog(int32_t id) const { return id == v_.eos || (v_.eot >= 0 && id == v_.eot); }

std::string Tokenizer::normalize(std::string_view text, bool space_prefix) const {
  std::string out;
  if (text.empty()) return out;
  out.reserve(text.size() + text.size() / 2 + kSpaceSymbol.size());
  if (space_prefix && v_.add_space_prefix) out += kSpaceSymbol;
  size_t i = 0;
  while (i < text.size()) {
    const size_t len = utf8_valid_len(text.substr(i));
    if (len == 0) {  // SentencePiece: a malformed byte becomes U+FFFD, consuming one byte
      out += kReplacementChar;
      ++i;
      continue;
    }
    for (size_t k = i; k < i + len; ++k) {
      if (text[k] == ' ') out += kSpaceSymbol;
      else out += text[k];
    }
    i += len;
  }
  return out;
}

size_t Tokenizer::match_user_defined(std::string_view s) const {
  for (const auto& u : user_defined_)  // longest first
    if (s.size() >= u.size() && s.compare(0, u.size(), u) == 0) return u.size();
  return 0;
}

int32_t Tokenizer::lookup(std::string_view p) const {
  if (auto it = reserved_.find(p); it != reserved_.end()) return it->second;
  if (auto it = mergeable_.find(p); it != mergeable_.end()) return it->second;
  return -1;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  return encode_impl(text, add_bos, true);
}

std::vector<int32_t> Tokenizer::encode_continuation(std::string_view text) const { return encode_impl(text, false, false); }

std::vector<int32_t> Tokenizer::encode_impl(std::string_view text, bool add_bos, bool space_prefix) const {
  std::vector<int32_t> out;
  if (add_bos) out.push_back(v_.bos);
  const std::string norm = normalize(text, space_prefix);
  if (norm.empty()) return out;
  out.reserve(out.size() + norm.size() / 3 + 1);

  // Symbols: [begin, begin+len) of `norm`, doubly linked; a merged-away symbol has len 0.
  struct Symbol {
    int32_t prev, next;
    uint32_t begin, len;
    bool freeze;  // user-defined piece: never merged
  };
  std::vector<Symbol> sym;
  sym.reserve(norm.size());
  for (size_t pos = 0; pos < norm.size();) {
    std::string_view rest(norm.data() + pos, norm.size() - pos);
    size_t len = user_defined_.empty() ? 0 : match_user_defined(rest);
    const bool freeze = len > 0;
    if (!freeze) len = std::min(rest.size(), utf8_lead_len(static_cast<unsigned char>(rest[0])));
    const auto idx = static_cast<int32_t>(sym.size());
    sym.push_back({idx - 1, pos + len < norm.size() ? idx + 1 : -1, static_cast<uint32_t>(pos),
                   static_cast<uint32_t>(len), freeze});
    pos += len;
  }

  struct Pair {
    int32_t left, right;
    float score;
    uint32_t size;
  };
  // Max-heap on score; on equal scores the leftmost pair comes first.
  const auto worse = [](const Pair& a, const Pair& b) { return a.score < b.score || (a.score == b.score && a.left > b.left); };
  std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> agenda(worse);
  // Unused pieces may be merged through but are not emitted: remember what they were made of.
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;

  const auto view = [&](int32_t i) { return std::string_view(norm.data() + sym[i].begin, sym[i].len); };
  const auto maybe_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0 || sym[l].freeze || sym[r].freeze) return;
    const std::string_view merged(norm.data() + sym[l].begin, sym[l].len + sym[r].len);
    const auto it = mergeable_.find(merged);
    if (it == mergeable_.end()) return;
    agenda.push({l, r, v_.scores[it->second], static_cast<uint32_t>(merged.size())});
    if (v_.types[it->second] == TokenType::kUnused) rev_merge[merged] = {view(l), view(r)};
  };

  for (size_t i = 1; i < sym.size(); ++i) maybe_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& l = sym[top.left];
    Symbol& r = sym[top.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != top.size) continue;  // stale
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = top.left;
    r.len = 0;
    maybe_add(l.prev, top.left);
    maybe_add(top.left, l.next);
  }

  const auto emit = [&](std::string_view w) {
    const int32_t id = lookup(w);
    if (id < 0 || v_.types[id] == TokenType::kUnknown) {
      if (byte_fallback_) {
        for (const char c : w) out.push_back(byte_id_[static_cast<unsigned char>(c)]);
      } else if (v_.unk >= 0) {
        out.push_back(v_.unk);
      }  // no unk and no byte fallback: the character cannot be represented and is dropped
      return;
    }
    out.push_back(id);
  };
  std::function<void(std::string_view)> resegment = [&](std::string_view w) {
    const int32_t id = lookup(w);
    if (id >= 0 && v_.types[id] == TokenType::kUnused) {
      if (const auto p = rev_merge.find(w); p != rev_merge.end()) {
        resegment(p->second.first);
        resegment(p->second.second);
        return;
      }
    }
    emit(w);
  };
  for (int32_t i = 0; i != -1; i = sym[i].next) resegment(view(i));
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  check_id(id);
  switch (v_.types[id]) {
    case TokenType::kControl: return {};
    case TokenType::kUnknown: return std::string(kUnknownSurface);
    case TokenType::kByte: return std::string(1, static_cast<char>(byte_of_[id]));
    default: {
      std::string s;
      append_unescaped(s, v_.pieces[id]);
      return s;
    }
  }
}

// SentencePiece DecodeIds: control pieces are invisible; runs of byte pieces are reassembled and each
// byte that does not form a valid character becomes U+FFFD; the first visible piece loses one leading
// "▁" (the dummy prefix), and any visible piece (byte or unknown included) ends that.
std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  std::string bytes;  // current run of byte pieces
  bool bos_ws = true;
  for (const int32_t id : ids) {
    check_id(id);
    const TokenType t = v_.types[id];
    if (t == TokenType::kByte) {
      bytes += static_cast<char>(byte_of_[id]);
      bos_ws = false;
      continue;
    }
    append_utf8_sanitized(out, bytes);
    bytes.clear();
    if (t == TokenType::kControl) continue;
    if (t == TokenType::kUnknown) {
      out += kUnknownSurface;
      bos_ws = false;
      continue;
    }
    std::string_view p = v_.pieces[id];
    if (bos_ws && v_.add_space_prefix && p.substr(0, kSpaceSymbol.size()) == kSpaceSymbol) p.remove_prefix(kSpaceSymbol.size());
    bos_ws = false;
    append_unescaped(out, p);
  }
  append_utf8_sanitized(out, bytes);
  return out;
}

// Same rules as decode(), one id at a time: byte pieces collect in pending_ and are released as soon
// as they form whole characters (or cannot any more); a non-byte piece ends the byte run as in decode().
std::string StreamDecoder::push(int32_t id) {
  const TokenType t = tok_->type(id);
  std::string out;
  if (t == TokenType::kByte) {
    pending_ += static_cast<char>(tok_->byte_value(id));
    first_ = false;
    size_t i = 0;
    while (i < pending_.size()) {
      const std::string_view rest(pending_.data() + i, pending_.size() - i);
      if (utf8_incomplete_prefix(rest)) break;  // wait for more bytes
      const size_t len = utf8_valid_len(rest);
      if (len == 0) {
        out += kReplacementChar;
        ++i;
      } else {
        out.append(rest.data(), len);
        i += len;
      }
    }
    pending_.erase(0, i);
    return out;
  }
  out = flush();
  if (t == TokenType::kControl) return out;
  std::string s = tok_->token_bytes(id);
  if (first_ && t != TokenType::kUnknown && tok_->add_space_prefix() &&
      tok_->piece(id).compare(0, kSpaceSymbol.size(), kSpaceSymbol) == 0)
    s.erase(0, 1);  // token_bytes turned the leading "▁" into this ' '

  first_ = false;
  return out + s;
}

std::string StreamDecoder::flush() {
  std::string out;
  append_utf8_sanitized(out, pending_);
  pending_.clear();
  return out;
}

}  // namespace wai::text
