// Chat templates: Mistral v0.1 reference ids (mistral-reference.md §5), structure of Llama 2 and plain,
// name/metadata detection, and the error cases.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "unit/mistral_vocab.h"

namespace {

using namespace wai::text;

const std::string kDir = tokenizer_testdata_dir();

class ChatTemplates : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tok_ = &mistral_tokenizer(); }
  static std::vector<int32_t> cat(std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  }
  std::vector<int32_t> sp(const std::string& s) const { return tok_->encode(s, false); }
  static const Tokenizer* tok_;
};
const Tokenizer* ChatTemplates::tok_ = nullptr;

TEST_F(ChatTemplates, MistralReferenceIds) {
  const std::vector<ChatMessage> m = {{"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"assistant", "d"}};
  const std::vector<int32_t> want = {1,   733, 16289, 28793, 264, 733, 28748, 16289, 28793, 287, 2,
                                     733, 16289, 28793, 277, 733, 28748, 16289, 28793, 281, 2};
  EXPECT_EQ(apply_chat_template(ChatTemplate::kMistralV01, *tok_, m), want);
}

TEST_F(ChatTemplates, MistralSystemToolAndMergedTurns) {
  // System prompts (joined) go before the first user message; "tool" is user text; consecutive
  // same-role messages are joined with "\n\n".
  const std::vector<ChatMessage> m = {{"system", "S1"}, {"system", "S2"}, {"user", "u1"}, {"tool", "t"},
                                      {"assistant", "a1"}, {"assistant", "a2"}, {"user", "u2"}};
  const auto want = cat({{1}, sp("[INST] S1\n\nS2\n\nu1\n\nt [/INST]"), sp("a1\n\na2"), {2}, sp("[INST] u2 [/INST]")});
  EXPECT_EQ(apply_chat_template(ChatTemplate::kMistralV01, *tok_, m), want);
  EXPECT_EQ(tok_->decode(want), "[INST] S1\n\nS2\n\nu1\n\nt [/INST] a1\n\na2 [INST] u2 [/INST]");
}

// Meta's reference strips each turn's whole text (system block included), not the user text inside it.
TEST_F(ChatTemplates, Llama2) {
  const std::vector<ChatMessage> m = {{"system", "Be brief."}, {"user", " hi "}, {"assistant", "hello"}, {"user", "bye"}};
  const auto want = cat({{1}, sp("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n hi [/INST] hello "), {2}, {1},
                         sp("[INST] bye [/INST]")});
  EXPECT_EQ(apply_chat_template(ChatTemplate::kLlama2, *tok_, m), want);
}

TEST_F(ChatTemplates, Plain) {
  EXPECT_EQ(apply_chat_template(ChatTemplate::kPlain, *tok_, std::vector<ChatMessage>{{"user", "Once upon a time"}}),
            tok_->encode("Once upon a time", true));
  EXPECT_EQ(apply_chat_template(ChatTemplate::kPlain, *tok_,
                                std::vector<ChatMessage>{{"system", "S"}, {"user", "U"}, {"assistant", "A"}}),
            tok_->encode("S\n\nU\nA", true));
}

TEST_F(ChatTemplates, Errors) {
  for (auto t : {ChatTemplate::kMistralV01, ChatTemplate::kLlama2, ChatTemplate::kPlain}) {
    EXPECT_THROW(apply_chat_template(t, *tok_, std::vector<ChatMessage>{}), wai::Error);
    EXPECT_THROW(apply_chat_template(t, *tok_, std::vector<ChatMessage>{{"wizard", "x"}}), wai::Error);
    EXPECT_THROW(apply_chat_template(t, *tok_, std::vector<ChatMessage>{{"system", "x"}, {"assistant", "y"}}),
                 wai::Error);
    try {
      apply_chat_template(t, *tok_, std::vector<ChatMessage>{{"user", "x"}, {"robot", "y"}});
      ADD_FAILURE() << "no throw";
    } catch (const wai::Error& e) {
      EXPECT_EQ(e.kind(), wai::ErrorKind::kInvalidInput);
      EXPECT_NE(std::string(e.what()).find("robot"), std::string::npos) << e.what();
    }
  }
}

TEST(ChatTemplateNames, RoundTripAndDetect) {
  for (auto t : {ChatTemplate::kMistralV01, ChatTemplate::kLlama2, ChatTemplate::kPlain})
    EXPECT_EQ(chat_template_from_name(chat_template_name(t)), t);
  EXPECT_FALSE(chat_template_from_name("chatml").has_value());
  const auto file = wai::gguf::File::open(kDir + "mistral-v0.1-vocab.gguf");  // general.name "mistral-7b-v0.1 tokenizer"
  EXPECT_EQ(detect_chat_template(file), ChatTemplate::kMistralV01);

  const auto detect = [](const std::string& tmpl, const std::string& name) {
    wai::gguf::Writer w;
    if (!name.empty()) w.set_string("general.name", name);
    if (!tmpl.empty()) w.set_string("tokenizer.chat_template", tmpl);
    const auto bytes = w.to_bytes();
    return detect_chat_template(wai::gguf::File::parse(bytes));
  };
  EXPECT_EQ(detect("{% if messages[0]['role'] == 'system' %}<<SYS>>\n{% endif %}[INST] ...", ""), ChatTemplate::kLlama2);
  EXPECT_EQ(detect("{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}", ""),
            ChatTemplate::kMistralV01);
  EXPECT_EQ(detect("", "Llama-2-7b-chat"), ChatTemplate::kLlama2);
  EXPECT_EQ(detect("", "Mistral-7B-Instruct-v0.1"), ChatTemplate::kMistralV01);
}

}  // namespace
