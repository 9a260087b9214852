// Tokenizer: llama.cpp-format goldens (.inp/.out), streaming decode, speed, invalid input, bad vocabularies.
#include <gtest/gtest.h>

#include <ctime>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "unit/mistral_vocab.h"

namespace {

using wai::text::StreamDecoder;
using wai::text::Tokenizer;
using wai::text::TokenType;
using wai::text::Vocab;

const std::string kDir = tokenizer_testdata_dir();

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// llama.cpp's test-tokenizer-0 format: strings separated by "\n__ggml_vocab_test__\n"; one id line each.
void check_golden(const std::string& vocab, const std::string& stem) {
  const auto file = wai::gguf::File::open(kDir + vocab);
  const Tokenizer tok = Tokenizer::from_gguf(file);
  const std::string inp = read_file(kDir + stem + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    size_t end = inp.find(sep, pos);
    if (end == std::string::npos) end = inp.size();
    texts.push_back(inp.substr(pos, end - pos));
    pos = end + sep.size();
  }
  std::istringstream out(read_file(kDir + stem + ".out"));
  std::string line;
  size_t n = 0;
  for (const auto& text : texts) {
    ASSERT_TRUE(std::getline(out, line)) << "missing expected line for case " << n;
    std::vector<int32_t> want;
    std::istringstream ls(line);
    for (int32_t id; ls >> id;) want.push_back(id);
    EXPECT_EQ(tok.encode(text, false), want) << vocab << " case " << n << ": \"" << text << "\"";
    EXPECT_EQ(tok.decode(want), text) << vocab << " case " << n;
    ++n;
  }
  EXPECT_GE(n, 30u);
}

TEST(TokenizerGolden, LlamaSpm) { check_golden("ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-spm.gguf"); }
TEST(TokenizerGolden, MistralV01) { check_golden("mistral-v0.1-vocab.gguf", "mistral-v0.1"); }

class Mistral : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tok_ = &mistral_tokenizer(); }
  static const Tokenizer* tok_;
};
const Tokenizer* Mistral::tok_ = nullptr;

TEST_F(Mistral, SpecialIdsAndBos) {
  EXPECT_EQ(tok_->n_vocab(), 32000);
  EXPECT_EQ(tok_->bos(), 1);
  EXPECT_EQ(tok_->eos(), 2);
  EXPECT_EQ(tok_->unk(), 0);
  EXPECT_TRUE(tok_->add_bos());
  EXPECT_TRUE(tok_->is_control(1));
  EXPECT_TRUE(tok_->is_eog(2));
  EXPECT_FALSE(tok_->is_eog(1));
  EXPECT_EQ(tok_->encode("Hello world", true), (std::vector<int32_t>{1, 22557, 1526}));
  EXPECT_EQ(tok_->encode("", true), (std::vector<int32_t>{1}));
  EXPECT_TRUE(tok_->encode("", false).empty());
  EXPECT_EQ(tok_->encode("\n", false), (std::vector<int32_t>{28705, 13}));  // "▁" then byte <0x0A>
  // Control pieces in the text are plain text, not special ids.
  const auto ids = tok_->encode("<s></s>", false);
  for (auto id : ids) EXPECT_FALSE(tok_->is_control(id));
  EXPECT_EQ(tok_->decode(ids), "<s></s>");
  EXPECT_EQ(tok_->decode(std::vector<int32_t>{1, 22557, 2}), "Hello");  // controls are invisible
}

TEST_F(Mistral, TokenBytes) {
  EXPECT_EQ(tok_->token_bytes(22557), " Hello");
  EXPECT_EQ(tok_->token_bytes(13), "\n");
  EXPECT_EQ(tok_->token_bytes(3 + 0xF0), "\xF0");
  EXPECT_EQ(tok_->token_bytes(1), "");
  EXPECT_EQ(tok_->piece(13), "<0x0A>");
  EXPECT_THROW(tok_->token_bytes(32000), wai::Error);
  EXPECT_THROW(tok_->decode(std::vector<int32_t>{5, -1}), wai::Error);
}

TEST_F(Mistral, StreamDecoderHoldsPartialCharacters) {
  // "🦙" has no piece: byte fallback gives 4 byte tokens; nothing may come out until the last one.
  const std::string llama = "\xF0\x9F\xA6\x99";
  const auto ids = tok_->encode("Hi " + llama + " ok", false);
  std::vector<int32_t> bytes_ids;
  for (auto id : ids)
    if (tok_->type(id) == TokenType::kByte) bytes_ids.push_back(id);
  ASSERT_EQ(bytes_ids.size(), 4u);

  StreamDecoder sd(*tok_);
  std::string all;
  std::vector<std::string> outs;
  for (auto id : ids) {
    outs.push_back(sd.push(id));
    all += outs.back();
  }
  all += sd.flush();
  EXPECT_EQ(all, tok_->decode(ids));
  EXPECT_EQ(all, "Hi " + llama + " ok");
  size_t k = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (tok_->type(ids[i]) != TokenType::kByte) continue;
    if (++k < 4) EXPECT_EQ(outs[i], "") << "byte " << k << " emitted early";
    else EXPECT_EQ(outs[i], llama);
  }
}

TEST_F(Mistral, StreamDecoderMatchesDecodeOnRandomText) {
  std::mt19937 rng(99);
  const std::vector<std::string> parts = {"日本", "😀", "👨‍👩‍👧", " a", "\n", "  ", "é", "x", "🦙", "\t"};
  for (int i = 0; i < 200; ++i) {
    std::string s;
    for (int j = 0, k = 1 + static_cast<int>(rng() % 10); j < k; ++j) s += parts[rng() % parts.size()];
    const auto ids = tok_->encode(s, true);
    StreamDecoder sd(*tok_);
    std::string streamed;
    for (auto id : ids) {
      const std::string piece = sd.push(id);
      // every chunk is itself complete UTF-8
      EXPECT_EQ(tok_->decode(tok_->encode(piece, false)), piece);
      streamed += piece;
    }
    streamed += sd.flush();
    EXPECT_EQ(streamed, tok_->decode(ids));
    EXPECT_EQ(streamed, s);
  }
}

TEST_F(Mistral, StreamDecoderBrokenBytesBecomeReplacementChars) {
  StreamDecoder sd(*tok_);
  EXPECT_EQ(sd.push(3 + 0xE6), "");        // lead byte of a 3-byte character
  EXPECT_EQ(sd.push(3 + 0x97), "");        // valid continuation
  EXPECT_EQ(sd.push(3 + 0x41), "\xEF\xBF\xBD\xEF\xBF\xBD" "A");  // cannot complete: two U+FFFD, then 'A'
  EXPECT_EQ(sd.push(3 + 0xF0), "");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");
}

// CPU time of this thread (wall time would flake on a loaded 2-core machine).
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

TEST_F(Mistral, EncodesHundredKilobytesFast) {
  std::string text;
  std::mt19937 rng(1);
  const std::vector<std::string> words = {"the", "quick", "brown", "fox", "日本語", "😀", "1234", "\n", "code();"};
  while (text.size() < 100 * 1024) {
    text += words[rng() % words.size()];
    text += ' ';
  }
  const double t0 = cpu_seconds();
  const auto ids = tok_->encode(text, true);
  const double s = cpu_seconds() - t0;
  EXPECT_LT(s, 0.5) << "100 KB took " << s << " s";
  EXPECT_EQ(tok_->decode(ids), text);
  // One long run with no spaces at all (a single huge "word") is just as fast.
  const std::string run(100 * 1024, 'a');
  const double t1 = cpu_seconds();
  const auto ids2 = tok_->encode(run, false);
  const double s2 = cpu_seconds() - t1;
  EXPECT_LT(s2, 0.5) << "100 KB of 'a' took " << s2 << " s";
  EXPECT_EQ(tok_->decode(ids2), run);
  std::printf("encode 100 KB: mixed text %.1f ms CPU (%zu ids), one 100 KB word %.1f ms CPU (%zu ids)\n", s * 1e3,
              ids.size(), s2 * 1e3, ids2.size());
}

TEST_F(Mistral, InvalidUtf8IsHandled) {
  // Like SentencePiece: each malformed byte becomes U+FFFD (a piece of its own in this vocabulary).
  const auto ids = tok_->encode("a\xFF\xC0z", false);
  EXPECT_EQ(tok_->decode(ids), "a\xEF\xBF\xBD\xEF\xBF\xBDz");
  std::mt19937 rng(3);
  for (int i = 0; i < 300; ++i) {
    std::string s;
    for (int j = 0, k = static_cast<int>(rng() % 40); j < k; ++j) s += static_cast<char>(rng());
    const auto out = tok_->encode(s, true);
    for (auto id : out) ASSERT_TRUE(id >= 0 && id < tok_->n_vocab());
    (void)tok_->decode(out);
  }
}

// A small hand-made vocabulary: user-defined pieces are matched whole and never merged further; unused
// pieces take part in merges but are split back into their parts; without byte pieces unknown
// characters map to unk.
Vocab small_vocab() {
  Vocab v;
  const auto add = [&](std::string p, float s, TokenType t) {
    v.pieces.push_back(std::move(p));
    v.scores.push_back(s);
    v.types.push_back(t);
  };
  add("<unk>", 0, TokenType::kUnknown);
  add("<s>", 0, TokenType::kControl);
  add("</s>", 0, TokenType::kControl);
  add("\xE2\x96\x81", -1, TokenType::kNormal);  // 3 "▁"
  add("a", -2, TokenType::kNormal);             // 4
  add("b", -2, TokenType::kNormal);             // 5
  add("ab", -0.5f, TokenType::kUnused);         // 6
  add("abb", -0.1f, TokenType::kNormal);        // 7
  add("<tool>", 0, TokenType::kUserDefined);    // 8
  add("\xE2\x96\x81" "a", -3, TokenType::kNormal);  // 9 "▁a"
  return v;
}

TEST(TokenizerSmallVocab, UserDefinedUnusedAndUnknown) {
  const Tokenizer t = Tokenizer::from_vocab(small_vocab());
  // "▁abb": "ab"(-0.5) merges first, then "abb"(-0.1); "▁a"(-3) loses to "ab".
  EXPECT_EQ(t.encode("abb", false), (std::vector<int32_t>{3, 7}));
  // "▁ab": "ab" is unused, so it is split back into "a" "b".
  EXPECT_EQ(t.encode("ab", false), (std::vector<int32_t>{3, 4, 5}));
  // user-defined "<tool>" is one token and does not merge with its neighbours; 'x' is unknown.
  EXPECT_EQ(t.encode("a<tool>x", false), (std::vector<int32_t>{9, 8, 0}));
  EXPECT_EQ(t.decode(std::vector<int32_t>{9, 8, 0}), "a<tool> \xE2\x81\x87 ");
}

TEST(TokenizerSmallVocab, BadVocabulariesThrow) {
  Vocab v = small_vocab();
  v.scores.pop_back();
  EXPECT_THROW(Tokenizer::from_vocab(v), wai::Error);
  v = small_vocab();
  v.bos = 100;
  EXPECT_THROW(Tokenizer::from_vocab(v), wai::Error);
  v = small_vocab();
  v.types[4] = static_cast<TokenType>(9);
  EXPECT_THROW(Tokenizer::from_vocab(v), wai::Error);
  v = small_vocab();
  v.pieces[3] = "<0xZZ>";
  v.types[3] = TokenType::kByte;
  EXPECT_THROW(Tokenizer::from_vocab(v), wai::Error);
  EXPECT_THROW(Tokenizer::from_vocab(Vocab{}), wai::Error);
}

TEST(TokenizerGguf, MissingOrWrongKeysThrow) {
  const auto build = [](bool tokens, const std::string& model) {
    wai::gguf::Writer w;
    if (!model.empty()) w.set_string("tokenizer.ggml.model", model);
    if (tokens) {
      wai::gguf::Array a;
      a.elem_type = wai::gguf::ValueType::STRING;
      for (const char* p : {"<unk>", "<s>", "</s>", "a"}) a.items.push_back({wai::gguf::ValueType::STRING, std::string(p)});
      w.set_array("tokenizer.ggml.tokens", a);
    }
    return w.to_bytes();
  };
  const auto ok = build(true, "llama");
  const Tokenizer t = Tokenizer::from_gguf(wai::gguf::File::parse(ok));
  EXPECT_EQ(t.n_vocab(), 4);
  EXPECT_EQ(t.encode("aa", false), (std::vector<int32_t>{0, 3, 3}));  // "▁" has no piece and no bytes: unk
  const auto no_tokens = build(false, "llama");
  EXPECT_THROW(Tokenizer::from_gguf(wai::gguf::File::parse(no_tokens)), wai::Error);
  const auto no_model = build(true, "");
  EXPECT_THROW(Tokenizer::from_gguf(wai::gguf::File::parse(no_model)), wai::Error);
  const auto gpt2 = build(true, "gpt2");
  try {
    Tokenizer::from_gguf(wai::gguf::File::parse(gpt2));
    ADD_FAILURE() << "no throw";
  } catch (const wai::Error& e) {
    EXPECT_EQ(e.kind(), wai::ErrorKind::kUnsupported);
  }
}

}  // namespace
