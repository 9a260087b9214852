// Chat templates, token-exact (mistral-reference.md §5).
//
// sp(x) below is Tokenizer::encode(x) (dummy prefix, no BOS); nl is encode_continuation("\n") (the
// newline's own token, no dummy prefix).
//
// kMistralV01: BOS, then per user turn sp("[INST] " + user + " [/INST]"), per assistant turn
//   sp(assistant) + EOS; system messages are joined with "\n\n" and prepended (with "\n\n") to the first
//   user message; consecutive same-role messages are joined with "\n\n".
// kLlama2: BOS "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ..."
// kPlain: completion style, BOS [sp(system) nl nl] sp(turn 1) nl sp(turn 2) nl ... sp(turn n), user or
//   assistant alike (a lone user message: encode(text, true)).
//
// Answers the model generated (AnswerMemo): an assistant turn whose exact text is in the memo is
// rendered as the remembered ids: Mistral ids + EOS, Llama 2 BOS sp("[INST] {user} [/INST]") ids EOS,
// plain ids. Its text is the same (the memo holds only ids that decode to it); its tokens are the
// ones the model produced, so turn n+1's prompt starts with turn n's prompt + the answer's ids and the
// prefix cache finds both. Every template renders a prompt as a token-exact prefix of the prompt of
// the same conversation continued.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "text/answer_memo.h"
#include "text/tokenizer.h"

namespace wai::text {

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant" (| "tool", treated as user text)
  std::string content;
};

enum class ChatTemplate { kMistralV01, kLlama2, kPlain };

std::optional<ChatTemplate> chat_template_from_name(std::string_view name);  // "mistral-v0.1", "llama2", "plain"
std::string_view chat_template_name(ChatTemplate t);
// Picks a template from GGUF metadata (tokenizer.chat_template text, general.name); kMistralV01 default.
ChatTemplate detect_chat_template(const gguf::File& file);

// Throws wai::Error (kInvalidInput) for an empty conversation, an unknown role, or a conversation with
// no user message.
std::vector<int32_t> apply_chat_template(ChatTemplate t, const Tokenizer& tok, std::span<const ChatMessage> messages,
                                         const AnswerMemo* memo = nullptr);

}  // namespace wai::text
