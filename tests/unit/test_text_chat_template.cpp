// Chat templates: Mistral v0.1 reference ids (mistral-reference.md §5), structure of Llama 2 and plain,
// name/metadata detection, and the error cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "text/answer_memo.h"
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
  const std::vector<int32_t> nl = {13};  // <0x0A>, no dummy prefix
  EXPECT_EQ(tok_->encode_continuation("\n"), nl);
  const auto got = apply_chat_template(ChatTemplate::kPlain, *tok_,
                                       std::vector<ChatMessage>{{"system", "S"}, {"user", "U"}, {"assistant", "A"}});
  EXPECT_EQ(got, cat({{1}, sp("S"), nl, nl, sp("U"), nl, sp("A")}));
  EXPECT_EQ(tok_->decode(got), "S\n\n U\n A");
}

// Turn n+1 of a conversation renders as turn n's prompt + the generated answer's ids (+ the template's
// end of turn), whatever ids the model chose for that text; without the memo the answer is re-encoded.
TEST_F(ChatTemplates, RememberedAnswersKeepTheirIds) {
  // " Hello" as the model might produce it: "▁H" "ello" rather than the tokenizer's "▁Hello".
  std::vector<int32_t> answer = sp("H");
  const auto rest = tok_->encode_continuation("ello world");
  answer.insert(answer.end(), rest.begin(), rest.end());
  const std::string text = tok_->decode(answer);
  ASSERT_EQ(text, "Hello world");
  ASSERT_NE(sp(text), answer);

  AnswerMemo memo;
  memo.remember(text, answer);
  const std::vector<ChatMessage> turn1 = {{"system", "Be kind."}, {"user", "Say hello"}};
  std::vector<ChatMessage> turn2 = turn1;
  turn2.push_back({"assistant", text});
  turn2.push_back({"user", "Again"});
  const std::vector<int32_t> eos = {tok_->eos()};
  for (auto t : {ChatTemplate::kMistralV01, ChatTemplate::kLlama2, ChatTemplate::kPlain}) {
    SCOPED_TRACE(std::string(chat_template_name(t)));
    const auto p1 = apply_chat_template(t, *tok_, turn1, &memo);
    const auto p2 = apply_chat_template(t, *tok_, turn2, &memo);
    ASSERT_GT(p2.size(), p1.size() + answer.size());
    EXPECT_TRUE(std::equal(p1.begin(), p1.end(), p2.begin()));
    const size_t at = p1.size() + (t == ChatTemplate::kPlain ? 1 : 0);  // plain: nl before the answer
    EXPECT_TRUE(std::equal(answer.begin(), answer.end(), p2.begin() + static_cast<std::ptrdiff_t>(at)));
    if (t != ChatTemplate::kPlain) EXPECT_EQ(p2[at + answer.size()], tok_->eos());
    // The rendered text is the conversation's text either way.
    const auto plain2 = apply_chat_template(t, *tok_, turn2);
    EXPECT_NE(plain2, p2);
    if (t != ChatTemplate::kLlama2) EXPECT_EQ(tok_->decode(plain2), tok_->decode(p2));
  }
  // Mistral: the reference rendering with the answer's ids in place of sp(answer).
  EXPECT_EQ(apply_chat_template(ChatTemplate::kMistralV01, *tok_, turn2, &memo),
            cat({{1}, sp("[INST] Be kind.\n\nSay hello [/INST]"), answer, eos, sp("[INST] Again [/INST]")}));
  // Text the memo does not hold (an edited answer) is encoded as usual.
  turn2[2].content = "Hello world!";
  EXPECT_EQ(apply_chat_template(ChatTemplate::kMistralV01, *tok_, turn2, &memo),
            apply_chat_template(ChatTemplate::kMistralV01, *tok_, turn2));
}

TEST(AnswerMemo, ReplacesAndEvictsLeastRecentlyUsed) {
  AnswerMemo m(/*max_entries=*/3, /*max_bytes=*/1000);
  m.remember("a", {1});
  m.remember("b", {2});
  m.remember("c", {3});
  EXPECT_EQ(m.find("a"), std::vector<int32_t>{1});  // a is now the most recent
  m.remember("d", {4});                              // evicts b
  EXPECT_FALSE(m.find("b").has_value());
  EXPECT_EQ(m.size(), 3u);
  m.remember("a", {5, 6});  // replaced, not duplicated
  EXPECT_EQ(m.find("a"), (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.bytes(), 1 + 8 + 1 + 4 + 1 + 4u);
  m.remember("", {1});   // nothing to remember
  m.remember("e", {});
  EXPECT_EQ(m.size(), 3u);
  AnswerMemo small(/*max_entries=*/10, /*max_bytes=*/20);
  small.remember(std::string(30, 'x'), {1});  // larger than the whole memo: not kept
  EXPECT_EQ(small.size(), 0u);
  small.remember("0123456789", {1});  // 14 bytes
  small.remember("abcdefghij", {1});  // 28 > 20: the first goes
  EXPECT_EQ(small.size(), 1u);
  EXPECT_TRUE(small.find("abcdefghij").has_value());
  EXPECT_LE(small.bytes(), 20u);
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
