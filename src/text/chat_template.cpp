// Chat templates (see chat_template.h). Each template first normalizes the conversation the same way:
// "tool" becomes "user", system messages are collected (joined with "\n\n"), and consecutive messages
// of the same role are joined with "\n\n"; then the turns are tokenized piece by piece, each sp(...)
// call with its own dummy prefix, exactly as mistral-common / Meta's reference code do.
#include "text/chat_template.h"

#include <algorithm>
#include <cctype>

#include "util/error.h"

namespace wai::text {

namespace {

struct Turn {
  bool user;
  std::string text;
};

struct Conversation {
  std::string system;  // "" when none
  bool has_system = false;
  std::vector<Turn> turns;
};

Conversation normalize(std::span<const ChatMessage> messages) {
  if (messages.empty()) invalid("chat: the conversation is empty");
  Conversation c;
  bool any_user = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (m.role == "system") {
      c.system = c.has_system ? c.system + "\n\n" + m.content : m.content;
      c.has_system = true;
      continue;
    }
    bool user;
    if (m.role == "user" || m.role == "tool") user = true;
    else if (m.role == "assistant") user = false;
    else invalid("chat: message " + std::to_string(i) + " has unknown role '" + m.role + "'");
    any_user |= user;
    if (!c.turns.empty() && c.turns.back().user == user) c.turns.back().text += "\n\n" + m.content;
    else c.turns.push_back({user, m.content});
  }
  if (!any_user) invalid("chat: the conversation has no user message");
  return c;
}

void append(std::vector<int32_t>& out, const std::vector<int32_t>& ids) { out.insert(out.end(), ids.begin(), ids.end()); }

std::string_view trim(std::string_view s) {
  const auto sp = [](char ch) { return std::isspace(static_cast<unsigned char>(ch)) != 0; };
  while (!s.empty() && sp(s.front())) s.remove_prefix(1);
  while (!s.empty() && sp(s.back())) s.remove_suffix(1);
  return s;
}

// The generated ids of an assistant turn, when the memo has its exact text.
std::optional<std::vector<int32_t>> generated(const AnswerMemo* memo, const std::string& text) {
  if (!memo || text.empty()) return std::nullopt;
  return memo->find(text);
}

// Mistral v0.1 (mistral-common InstructTokenizerV1): the system prompt goes before the first user message.
std::vector<int32_t> mistral_v01(const Tokenizer& tok, Conversation c, const AnswerMemo* memo) {
  std::vector<int32_t> out{tok.bos()};
  bool first_user = true;
  for (auto& t : c.turns) {
    if (t.user) {
      std::string text = t.text;
      if (first_user && c.has_system) text = c.system + "\n\n" + text;
      first_user = false;
      append(out, tok.encode("[INST] " + text + " [/INST]", false));
    } else {
      auto ids = generated(memo, t.text);
      append(out, ids ? *ids : tok.encode(t.text, false));
      out.push_back(tok.eos());
    }
  }
  return out;
}

// Llama 2 chat (Meta's llama/generation.py chat_completion): each user/assistant exchange is
// BOS sp("[INST] {user} [/INST] {assistant} ") EOS with both texts stripped; a final user turn is
// BOS sp("[INST] {user} [/INST]"); the system prompt is wrapped in <<SYS>> inside the first user turn.
std::vector<int32_t> llama2(const Tokenizer& tok, Conversation c, const AnswerMemo* memo) {
  std::vector<int32_t> out;
  bool first_user = true;
  for (size_t i = 0; i < c.turns.size(); ++i) {
    const Turn& t = c.turns[i];
    if (!t.user) {  // an assistant turn with no user turn before it (leading): its own segment
      out.push_back(tok.bos());
      append(out, tok.encode(std::string(trim(t.text)) + " ", false));
      out.push_back(tok.eos());
      continue;
    }
    std::string user = t.text;
    if (first_user && c.has_system) user = "<<SYS>>\n" + c.system + "\n<</SYS>>\n\n" + user;
    first_user = false;
    out.push_back(tok.bos());
    if (i + 1 < c.turns.size()) {
      const Turn& a = c.turns[++i];
      if (auto ids = generated(memo, a.text)) {  // the exchange as it was generated
        append(out, tok.encode("[INST] " + std::string(trim(user)) + " [/INST]", false));
        append(out, *ids);
      } else {
        append(out, tok.encode("[INST] " + std::string(trim(user)) + " [/INST] " + std::string(trim(a.text)) + " ", false));
      }
      out.push_back(tok.eos());
    } else {
      append(out, tok.encode("[INST] " + std::string(trim(user)) + " [/INST]", false));
    }
  }
  return out;
}

// Completion style: BOS [sp(system) nl nl] sp(turn 1) nl sp(turn 2) ... sp(turn n). Each piece on its
// own so that a prompt is a token prefix of its continuation (one string would let a turn's last
// characters merge with what follows); a lone user message is exactly encode(text, true).
std::vector<int32_t> plain(const Tokenizer& tok, const Conversation& c, const AnswerMemo* memo) {
  const std::vector<int32_t> nl = tok.encode_continuation("\n");
  std::vector<int32_t> out{tok.bos()};
  if (c.has_system) {
    append(out, tok.encode(c.system, false));
    append(out, nl);
    append(out, nl);
  }
  for (size_t i = 0; i < c.turns.size(); ++i) {
    const Turn& t = c.turns[i];
    if (i) append(out, nl);
    const std::optional<std::vector<int32_t>> ids = t.user ? std::nullopt : generated(memo, t.text);
    append(out, ids ? *ids : tok.encode(t.text, false));
  }
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

}  // namespace

std::optional<ChatTemplate> chat_template_from_name(std::string_view name) {
  if (name == "mistral-v0.1" || name == "mistral") return ChatTemplate::kMistralV01;
  if (name == "llama2" || name == "llama-2") return ChatTemplate::kLlama2;
  if (name == "plain" || name == "none") return ChatTemplate::kPlain;
  return std::nullopt;
}

std::string_view chat_template_name(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::kMistralV01: return "mistral-v0.1";
    case ChatTemplate::kLlama2: return "llama2";
    case ChatTemplate::kPlain: return "plain";
  }
  return "mistral-v0.1";
}

ChatTemplate detect_chat_template(const gguf::File& file) {
  if (const auto tmpl = file.get_string("tokenizer.chat_template")) {
    if (tmpl->find("<<SYS>>") != std::string::npos) return ChatTemplate::kLlama2;
    if (tmpl->find("[INST]") != std::string::npos) return ChatTemplate::kMistralV01;
  }
  const std::string name = lower(file.get_string("general.name").value_or(""));
  if (name.find("mistral") != std::string::npos) return ChatTemplate::kMistralV01;
  if ((name.find("llama-2") != std::string::npos || name.find("llama2") != std::string::npos) &&
      name.find("chat") != std::string::npos)
    return ChatTemplate::kLlama2;
  return ChatTemplate::kMistralV01;
}

std::vector<int32_t> apply_chat_template(ChatTemplate t, const Tokenizer& tok, std::span<const ChatMessage> messages,
                                         const AnswerMemo* memo) {
  Conversation c = normalize(messages);
  switch (t) {
    case ChatTemplate::kMistralV01: return mistral_v01(tok, std::move(c), memo);
    case ChatTemplate::kLlama2: return llama2(tok, std::move(c), memo);
    case ChatTemplate::kPlain: return plain(tok, c, memo);
  }
  return mistral_v01(tok, std::move(c), memo);
}

}  // namespace wai::text
