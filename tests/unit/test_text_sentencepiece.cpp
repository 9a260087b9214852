// wai's tokenizer (built from mistral-v0.1-vocab.gguf) against the reference SentencePiece library
// (Debian libsentencepiece, loading the real mistral-v0.1-tokenizer.model) on a generated corpus.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace {

using wai::text::Tokenizer;
using wai::text::TokenType;

const std::string kDir = std::string(WAI_SHARED_DIR) + "/testdata/tokenizer/";

std::string escape(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      o += static_cast<char>(c);
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02X", c);
      o += b;
    }
  }
  return o;
}

std::string ids_str(const std::vector<int32_t>& v) {
  std::string o;
  for (auto i : v) o += std::to_string(i) + " ";
  return o;
}

bool is_valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = wai::text::utf8_valid_len(std::string_view(s).substr(i));
    if (!n) return false;
    i += n;
  }
  return true;
}

void append_cp(std::string& o, uint32_t c) {
  if (c < 0x80) {
    o += static_cast<char>(c);
  } else if (c < 0x800) {
    o += static_cast<char>(0xC0 | (c >> 6));
    o += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    o += static_cast<char>(0xE0 | (c >> 12));
    o += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    o += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    o += static_cast<char>(0xF0 | (c >> 18));
    o += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    o += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    o += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// >= 1000 varied strings from a fixed seed: fragments of many scripts and kinds, mixed at random, plus
// random code points, whitespace runs and (marked) invalid UTF-8 byte strings.
std::vector<std::string> make_corpus() {
  const std::vector<std::string> frags = {
      "Hello", "world", "Hello, world!", " the", "The quick brown fox jumps over the lazy dog.", "don't", "I'm",
      "y'all", "café", "naïve", "Ångström", "façade", "résumé", "Zürich", "e\xCC\x81", "niño", "Straße", "ÆØÅ",
      "日本語のテキスト", "中文字符测试", "한국어 문장", "東京タワー", "漢字", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️",
      "🦙🦙", "✅", "12345", "3.14159", "1,000,000", "2024-01-01", "0x1F", "007", "   ", "\t", "\n", "\r\n",
      "\n\n\n", " \t ", "\t\t", "int main() { return 0; }", "def f(x):\n    return x**2\n", "<div class=\"a\">",
      "std::vector<int> v;", "for (i = 0; i < n; ++i) {", "[INST]", "[/INST]", "[INST] hi [/INST]", "<s>", "</s>",
      "<unk>", "<0x41>", "<<SYS>>", "مرحبا بالعالم", "שלום", "नमस्ते", "สวัสดี", "Привет, мир", "Ελληνικά",
      "∑∫√∞", "\xC2\xA0", "\xE2\x80\x8B", "\xEF\xBB\xBF", "\xEE\x80\x80", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\xF4\x8F\xBF\xBF",
      "\xEF\xBF\xBD", "!!!", "???", "...", "—", "–", "“quoted”", "«guillemets»", "a", "b", " ", "  ", "▁", "▁▁x",
      "\x01\x02", "`", "~", "|", "\\", "@user", "#tag", "$100", "50%", "a+b=c", "<|im_start|>", "ZWJ\xE2\x80\x8D",
  };
  const std::vector<std::string> seps = {"", " ", "  ", "\n", "\t", ", ", ". ", "   ", "\n\n", " \n "};
  std::mt19937 rng(12345);
  const auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  std::vector<std::string> out(frags.begin(), frags.end());
  for (int i = 0; i < 900; ++i) {  // random mixes
    std::string s;
    const size_t k = 1 + pick(8);
    if (pick(4) == 0) s += seps[pick(seps.size())];
    for (size_t j = 0; j < k; ++j) {
      s += frags[pick(frags.size())];
      s += seps[pick(seps.size())];
    }
    out.push_back(s);
  }
  // random code points from assorted planes (valid scalar values only)
  const std::vector<std::pair<uint32_t, uint32_t>> ranges = {
      {0x20, 0x7E}, {0xA0, 0x24F}, {0x370, 0x52F}, {0x590, 0x6FF}, {0x900, 0xDFF}, {0x2000, 0x2BFF},
      {0x3000, 0x30FF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xE000, 0xF8FF}, {0xFB00, 0xFFFD},
      {0x1F300, 0x1FAFF}, {0x10000, 0x10FFFF}, {0x01, 0x1F}};
  for (int i = 0; i < 300; ++i) {
    std::string s;
    const size_t k = 1 + pick(20);
    for (size_t j = 0; j < k; ++j) {
      const auto& r = ranges[pick(ranges.size())];
      uint32_t c = r.first + static_cast<uint32_t>(rng() % (r.second - r.first + 1));
      if (c >= 0xD800 && c < 0xE000) c = 'x';
      append_cp(s, c);
      if (pick(5) == 0) s += ' ';
    }
    out.push_back(s);
  }
  // whitespace runs with words
  for (int i = 0; i < 60; ++i) {
    std::string s;
    const size_t k = 1 + pick(6);
    for (size_t j = 0; j < k; ++j) {
      s.append(pick(6), " \t\n"[pick(3)]);
      s += pick(2) ? "word" : "x";
      s.append(pick(5), ' ');
    }
    out.push_back(s);
  }
  // invalid UTF-8: random bytes, and valid text with bytes cut out of multi-byte characters
  for (int i = 0; i < 100; ++i) {
    std::string s;
    const size_t k = 1 + pick(24);
    for (size_t j = 0; j < k; ++j) s += static_cast<char>(rng() & 0xFF);
    out.push_back(s);
  }
  for (int i = 0; i < 40; ++i) {
    std::string s = frags[pick(frags.size())] + frags[pick(frags.size())] + "😀日本";
    s.erase(pick(s.size()), 1);
    out.push_back(s);
  }
  out.push_back(std::string("a\0b", 3));
  out.push_back("\xC0\xAF");        // overlong
  out.push_back("\xED\xA0\x80");    // surrogate
  out.push_back("\xF4\x90\x80\x80");  // > U+10FFFF
  out.push_back("\xF0\x9F\x98");    // truncated emoji
  return out;
}

class SentencePieceOracle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sp_ = new sentencepiece::SentencePieceProcessor();
    const auto st = sp_->Load(kDir + "mistral-v0.1-tokenizer.model");
    ASSERT_TRUE(st.ok()) << st.ToString();
    file_ = new wai::gguf::File(wai::gguf::File::open(kDir + "mistral-v0.1-vocab.gguf"));
    tok_ = new Tokenizer(Tokenizer::from_gguf(*file_));
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete file_;
    delete sp_;
  }
  static sentencepiece::SentencePieceProcessor* sp_;
  static wai::gguf::File* file_;
  static Tokenizer* tok_;
};
sentencepiece::SentencePieceProcessor* SentencePieceOracle::sp_ = nullptr;
wai::gguf::File* SentencePieceOracle::file_ = nullptr;
Tokenizer* SentencePieceOracle::tok_ = nullptr;

TEST_F(SentencePieceOracle, VocabularyMatchesModel) {
  ASSERT_EQ(tok_->n_vocab(), sp_->GetPieceSize());
  EXPECT_EQ(tok_->bos(), sp_->bos_id());
  EXPECT_EQ(tok_->eos(), sp_->eos_id());
  EXPECT_EQ(tok_->unk(), sp_->unk_id());
  for (int i = 0; i < tok_->n_vocab(); ++i) {
    ASSERT_EQ(tok_->piece(i), sp_->IdToPiece(i)) << i;
    ASSERT_EQ(tok_->score(i), sp_->GetScore(i)) << i;
    ASSERT_EQ(tok_->type(i) == TokenType::kControl, sp_->IsControl(i)) << i;
    ASSERT_EQ(tok_->type(i) == TokenType::kByte, sp_->IsByte(i)) << i;
    ASSERT_EQ(tok_->type(i) == TokenType::kUnknown, sp_->IsUnknown(i)) << i;
    ASSERT_EQ(tok_->type(i) == TokenType::kUnused, sp_->IsUnused(i)) << i;
  }
}

TEST_F(SentencePieceOracle, GeneratedCorpusEncodesAndDecodesIdentically) {
  const auto corpus = make_corpus();
  ASSERT_GE(corpus.size(), 1000u);
  size_t n_valid = 0, n_invalid = 0, n_roundtrip = 0, enc_mismatch = 0, dec_mismatch = 0, roundtrip_fail = 0;
  for (const auto& s : corpus) {
    std::vector<int> ref;
    ASSERT_TRUE(sp_->Encode(s, &ref).ok());
    const std::vector<int32_t> want(ref.begin(), ref.end());
    const std::vector<int32_t> got = tok_->encode(s, false);
    if (got != want && ++enc_mismatch <= 10)
      ADD_FAILURE() << "encode mismatch for \"" << escape(s) << "\"\n want " << ids_str(want) << "\n  got " << ids_str(got);

    // Decoding: same text as SentencePiece's decoder (for any input), and the original text for valid UTF-8.
    std::string ref_text;
    ASSERT_TRUE(sp_->Decode(ref, &ref_text).ok());
    const std::string text = tok_->decode(want);
    if (text != ref_text && ++dec_mismatch <= 10)
      ADD_FAILURE() << "decode mismatch for \"" << escape(s) << "\": want \"" << escape(ref_text) << "\" got \"" << escape(text) << "\"";
    if (is_valid_utf8(s)) {
      ++n_valid;
      // A literal "▁" in the text is SentencePiece's space symbol and decodes to ' ' (the reference does
      // the same): only texts without it round-trip exactly.
      if (s.find("\xE2\x96\x81") != std::string::npos) {
        if (text != ref_text) ++roundtrip_fail;
      } else {
        ++n_roundtrip;
        if (text != s && ++roundtrip_fail <= 10) ADD_FAILURE() << "decode(encode(s)) != s for \"" << escape(s) << "\"";
      }
    } else {
      ++n_invalid;
    }
  }
  EXPECT_EQ(enc_mismatch, 0u);
  EXPECT_EQ(dec_mismatch, 0u);
  EXPECT_EQ(roundtrip_fail, 0u);
  EXPECT_GE(n_valid, 1000u);
  EXPECT_GE(n_roundtrip, 1000u);
  EXPECT_GE(n_invalid, 100u);
  std::printf("corpus: %zu strings (%zu valid UTF-8, %zu of them round-tripped; %zu invalid); mismatches: "
              "encode %zu, decode %zu, round trip %zu\n",
              corpus.size(), n_valid, n_roundtrip, n_invalid, enc_mismatch, dec_mismatch, roundtrip_fail);
}

TEST_F(SentencePieceOracle, DecodeOfArbitraryIdSequencesMatches) {
  // Random id sequences (byte pieces, controls, unk, pieces with and without "▁") decode like SentencePiece.
  std::mt19937 rng(7);
  for (int i = 0; i < 500; ++i) {
    std::vector<int> ids;
    const int k = 1 + static_cast<int>(rng() % 12);
    for (int j = 0; j < k; ++j) {
      const int r = static_cast<int>(rng() % 4);
      ids.push_back(r == 0 ? static_cast<int>(rng() % 3) : r == 1 ? 3 + static_cast<int>(rng() % 256)
                                                                  : static_cast<int>(rng() % 32000));
    }
    std::string ref;
    ASSERT_TRUE(sp_->Decode(ids, &ref).ok());
    const std::vector<int32_t> ids32(ids.begin(), ids.end());
    ASSERT_EQ(tok_->decode(ids32), ref) << ids_str(ids32);
    wai::text::StreamDecoder sd(*tok_);
    std::string streamed;
    for (auto id : ids32) streamed += sd.push(id);
    streamed += sd.flush();
    ASSERT_EQ(streamed, ref) << ids_str(ids32);
  }
}

// Protobuf wire-format helpers for the test below (a .model file is a serialized ModelProto).
uint64_t read_varint(const std::string& b, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0; pos < b.size() && shift < 64; shift += 7) {
    const auto c = static_cast<unsigned char>(b[pos++]);
    v |= static_cast<uint64_t>(c & 0x7F) << shift;
    if (!(c & 0x80)) break;
  }
  return v;
}
void write_varint(std::string& o, uint64_t v) {
  do {
    unsigned char c = v & 0x7F;
    v >>= 7;
    if (v) c |= 0x80;
    o += static_cast<char>(c);
  } while (v);
}

// Rewrites the real Mistral .model with some piece types changed (ModelProto.pieces = field 1; in each
// SentencePiece message, type = field 3, a varint). Everything else is copied byte for byte.
std::string retype_model(const std::string& in, const std::map<int, int>& new_type) {
  std::string out;
  size_t pos = 0;
  int index = 0;
  while (pos < in.size()) {
    const size_t start = pos;
    const uint64_t key = read_varint(in, pos);
    const int wt = key & 7;
    if (wt == 0) read_varint(in, pos);
    else if (wt == 1) pos += 8;
    else if (wt == 5) pos += 4;
    else if (wt == 2) pos += read_varint(in, pos);
    if ((key >> 3) != 1 || wt != 2) {
      out.append(in, start, pos - start);
      continue;
    }
    size_t p = start;
    read_varint(in, p);
    const uint64_t len = read_varint(in, p);
    const std::string msg = in.substr(p, len);
    const auto it = new_type.find(index++);
    if (it == new_type.end()) {
      out.append(in, start, pos - start);
      continue;
    }
    std::string m;
    for (size_t q = 0; q < msg.size();) {
      const size_t fs = q;
      const uint64_t k = read_varint(msg, q);
      if ((k & 7) == 0) read_varint(msg, q);
      else if ((k & 7) == 5) q += 4;
      else if ((k & 7) == 1) q += 8;
      else if ((k & 7) == 2) q += read_varint(msg, q);
      if ((k >> 3) != 3) m.append(msg, fs, q - fs);
    }
    write_varint(m, (3 << 3) | 0);
    write_varint(m, static_cast<uint64_t>(it->second));
    write_varint(out, (1 << 3) | 2);
    write_varint(out, m.size());
    out += m;
  }
  return out;
}

// User-defined and unused pieces, which the Mistral vocabulary lacks: the real model with some pieces
// retyped, loaded by the reference library, against wai built from the same retyped vocabulary.
// User-defined pieces must match whole and never merge with neighbours; unused pieces take part in
// merges but are split back into the pieces they were made of.
TEST_F(SentencePieceOracle, UserDefinedAndUnusedPiecesMatchReference) {
  std::ifstream f(kDir + "mistral-v0.1-tokenizer.model", std::ios::binary);
  const std::string model((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_GT(model.size(), 100000u);
  const std::vector<std::string> user = {"INST", "\xE2\x96\x81[", "ing", "\xE2\x96\x81\xE2\x96\x81", "<tool>"};
  const std::vector<std::string> unused = {"\xE2\x96\x81Hello", "\xE2\x96\x81world", "er", "\xE2\x96\x81the", "ation"};
  std::map<int, int> retype;
  wai::text::Vocab v;
  for (int i = 0; i < tok_->n_vocab(); ++i) {
    v.pieces.push_back(tok_->piece(i));
    v.scores.push_back(tok_->score(i));
    v.types.push_back(tok_->type(i));
  }
  for (const auto& p : user) {
    const int id = sp_->PieceToId(p);
    if (id == sp_->unk_id()) continue;  // "<tool>" is not a piece: skipped
    retype[id] = 4;
    v.types[id] = TokenType::kUserDefined;
  }
  for (const auto& p : unused) {
    const int id = sp_->PieceToId(p);
    ASSERT_NE(id, sp_->unk_id()) << p;
    retype[id] = 5;
    v.types[id] = TokenType::kUnused;
  }
  ASSERT_GE(retype.size(), 9u);
  sentencepiece::SentencePieceProcessor ref;
  const auto st = ref.LoadFromSerializedProto(retype_model(model, retype));
  ASSERT_TRUE(st.ok()) << st.ToString();
  for (const auto& [id, t] : retype) ASSERT_EQ(ref.IsUnused(id), t == 5) << id;
  const Tokenizer tok = Tokenizer::from_vocab(v);

  std::vector<std::string> texts = make_corpus();
  for (const char* t : {"[INST] hi [/INST]", "INSTINST", "singing in the rain", "Hello world", "the theme of the day",
                        "  two  spaces   three", "nation station", "ERROR: error er", "x[INST]y", "Hello, Hello!"})
    texts.push_back(t);
  size_t mismatches = 0, n_user = 0, n_split = 0;
  for (const auto& s : texts) {
    std::vector<int> r;
    ASSERT_TRUE(ref.Encode(s, &r).ok());
    const std::vector<int32_t> want(r.begin(), r.end());
    const auto got = tok.encode(s, false);
    for (auto id : want) n_user += v.types[id] == TokenType::kUserDefined;
    n_split += tok_->encode(s, false).size() < want.size();  // retyping made this text longer
    if (got != want && ++mismatches <= 10)
      ADD_FAILURE() << "\"" << escape(s) << "\"\n want " << ids_str(want) << "\n  got " << ids_str(got);
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GE(n_user, 100u);   // the comparison exercised user-defined pieces ...
  EXPECT_GE(n_split, 100u);  // ... and unused ones
  std::printf("retyped vocab: %zu texts identical; %zu user-defined ids, %zu texts longer than with the original vocab\n",
              texts.size() - mismatches, n_user, n_split);
}

// The Mistral v0.1 instruct layout (mistral-reference.md §5) with each sp(...) segment tokenized by the
// reference library: BOS, sp("[INST] " + user + " [/INST]"), sp(assistant) EOS, system before the first
// user message.
TEST_F(SentencePieceOracle, MistralChatTemplateMatchesReferenceSegments) {
  using wai::text::ChatMessage;
  const auto sp = [&](const std::string& text) {
    std::vector<int> ids;
    EXPECT_TRUE(sp_->Encode(text, &ids).ok());
    return std::vector<int32_t>(ids.begin(), ids.end());
  };
  const auto cat = [](std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  };
  const std::vector<ChatMessage> plain = {{"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"assistant", "d"}};
  EXPECT_EQ(wai::text::apply_chat_template(wai::text::ChatTemplate::kMistralV01, *tok_, plain),
            cat({{1}, sp("[INST] a [/INST]"), sp("b"), {2}, sp("[INST] c [/INST]"), sp("d"), {2}}));
  const std::vector<ChatMessage> sys = {{"system", "You are a pirate. Answer in one line."},
                                        {"user", "What is the capital of France?"},
                                        {"assistant", "Arr, Paris it be!"},
                                        {"user", "And of Japan? 日本 🦙"}};
  EXPECT_EQ(wai::text::apply_chat_template(wai::text::ChatTemplate::kMistralV01, *tok_, sys),
            cat({{1}, sp("[INST] You are a pirate. Answer in one line.\n\nWhat is the capital of France? [/INST]"),
                 sp("Arr, Paris it be!"), {2}, sp("[INST] And of Japan? 日本 🦙 [/INST]")}));
}

}  // namespace
