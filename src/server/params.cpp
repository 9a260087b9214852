#include "server/params.h"

#include <cmath>
#include <cstdio>

#include "server/errors.h"

namespace wai::server {

using nlohmann::json;

namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "unknown";
  }
}

[[noreturn]] void mismatch(const std::string& ptr, const json& v, const char* want) {
  bad_input("Type mismatch of '" + ptr + "', '" + type_name(v) + "' not in '" + want + "'");
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

// Field readers: nullopt when absent or null.
std::optional<double> number(const json& o, const std::string& key, double lo, double hi, const std::string& base = "") {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return std::nullopt;
  std::string ptr = base + "/" + key;
  if (!it->is_number()) mismatch(ptr, *it, "number");
  double v = it->get<double>();
  if (!std::isfinite(v)) bad_input("must be a finite number at '" + ptr + "'");
  if (v < lo) bad_input("must be >= " + fmt(lo) + " at '" + ptr + "'");
  if (v > hi) bad_input("must be <= " + fmt(hi) + " at '" + ptr + "'");
  return v;
}

std::optional<int64_t> integer(const json& o, const std::string& key, int64_t lo, int64_t hi, const std::string& base = "") {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return std::nullopt;
  std::string ptr = base + "/" + key;
  if (it->is_number_float()) {
    double d = it->get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.2e18) mismatch(ptr, *it, "integer");
    int64_t v = static_cast<int64_t>(d);
    if (v < lo) bad_input("must be >= " + std::to_string(lo) + " at '" + ptr + "'");
    if (v > hi) bad_input("must be <= " + std::to_string(hi) + " at '" + ptr + "'");
    return v;
  }
  if (!it->is_number_integer()) mismatch(ptr, *it, "integer");
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    bad_input("must be <= " + std::to_string(hi) + " at '" + ptr + "'");
  int64_t v = it->get<int64_t>();
  if (v < lo) bad_input("must be >= " + std::to_string(lo) + " at '" + ptr + "'");
  if (v > hi) bad_input("must be <= " + std::to_string(hi) + " at '" + ptr + "'");
  return v;
}

std::optional<bool> boolean(const json& o, const std::string& key, const std::string& base = "") {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) mismatch(base + "/" + key, *it, "boolean");
  return it->get<bool>();
}

std::optional<std::string> string(const json& o, const std::string& key, const std::string& base = "") {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) mismatch(base + "/" + key, *it, "string");
  return it->get<std::string>();
}

// Number of Unicode code points (the documented prompt length is in characters).
size_t utf8_chars(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// messages: [{role, content}]; OpenAI content may also be an array of {type:"text", text} parts.
std::vector<text::ChatMessage> parse_messages(const json& body, bool openai) {
  const json& m = body.at("messages");
  if (!m.is_array()) mismatch("/messages", m, "array");
  if (m.empty()) bad_input("'/messages' must contain at least 1 item");
  std::vector<text::ChatMessage> out;
  for (size_t i = 0; i < m.size(); ++i) {
    std::string base = "/messages/" + std::to_string(i);
    const json& item = m[i];
    if (!item.is_object()) mismatch(base, item, "object");
    if (!item.contains("role")) bad_input("required properties at '" + base + "' are 'role'");
    auto role = string(item, "role", base);
    if (!role) bad_input("required properties at '" + base + "' are 'role'");
    if (*role != "system" && *role != "user" && *role != "assistant" && *role != "tool" && *role != "developer")
      bad_input("'" + base + "/role' must be one of 'system', 'user', 'assistant', 'tool', got '" + *role + "'");
    if (*role == "developer") role = "system";  // OpenAI's newer name for system
    std::string content;
    auto it = item.find("content");
    if (it == item.end() || it->is_null()) {
      if (!openai || *role != "assistant") bad_input("required properties at '" + base + "' are 'content'");
    } else if (it->is_string()) {
      content = it->get<std::string>();
    } else if (openai && it->is_array()) {
      for (size_t k = 0; k < it->size(); ++k) {
        const json& part = (*it)[k];
        std::string pbase = base + "/content/" + std::to_string(k);
        if (!part.is_object()) mismatch(pbase, part, "object");
        auto type = string(part, "type", pbase);
        if (type != "text") bad_input("only text content parts are supported at '" + pbase + "/type'");
        auto t = string(part, "text", pbase);
        if (!t) bad_input("required properties at '" + pbase + "' are 'text'");
        content += *t;
      }
    } else {
      mismatch(base + "/content", *it, "string");
    }
    out.push_back({*role, std::move(content)});
  }
  return out;
}

std::vector<std::string> parse_stop(const json& body) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>().empty() ? std::vector<std::string>{} : std::vector<std::string>{it->get<std::string>()};
  if (!it->is_array()) mismatch("/stop", *it, "string or array");
  if (it->size() > 4) bad_input("'/stop' must contain at most 4 items");
  std::vector<std::string> out;
  for (size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_string()) mismatch("/stop/" + std::to_string(i), (*it)[i], "string");
    if (!(*it)[i].get<std::string>().empty()) out.push_back((*it)[i].get<std::string>());
  }
  return out;
}

void parse_options(const json& body, GenInput& in) {
  auto it = body.find("options");
  if (it == body.end() || it->is_null()) return;
  if (!it->is_object()) mismatch("/options", *it, "object");
  if (auto b = boolean(*it, "rejectIfBusy", "/options")) in.reject_if_busy = *b;
}

// Sampling fields shared by both APIs; `openai` widens the penalty ranges and the seed.
void parse_sampling(const json& body, GenInput& in, bool openai) {
  auto& s = in.sampling;
  s.temperature = 0.6f;
  if (auto v = number(body, "temperature", 0, openai ? 2 : 5)) s.temperature = static_cast<float>(*v);
  if (auto v = number(body, "top_p", 0, 2)) s.top_p = static_cast<float>(std::min(*v, 1.0));
  if (auto v = integer(body, "top_k", openai ? 0 : 1, openai ? 1000000 : 50)) s.top_k = static_cast<int32_t>(*v);
  if (auto v = number(body, "repetition_penalty", 0, 2)) s.repetition_penalty = *v == 0 ? 1.0f : static_cast<float>(*v);
  double plo = openai ? -2 : 0;
  if (auto v = number(body, "frequency_penalty", plo, 2)) s.frequency_penalty = static_cast<float>(*v);
  if (auto v = number(body, "presence_penalty", plo, 2)) s.presence_penalty = static_cast<float>(*v);
  if (openai) {
    if (auto v = integer(body, "seed", INT64_MIN, INT64_MAX)) s.seed = *v == 0 ? 0x5eedull : static_cast<uint64_t>(*v);
  } else {
    if (auto v = integer(body, "seed", 1, 9999999999LL)) s.seed = static_cast<uint64_t>(*v);
  }
  if (auto v = boolean(body, "stream")) in.stream = *v;
  parse_options(body, in);
}

void parse_openai_common(const json& body, GenInput& in) {
  auto model = string(body, "model");
  if (!model) bad_input("required properties at '/' are 'model'");
  in.model = *model;
  parse_sampling(body, in, true);
  if (auto v = integer(body, "max_tokens", 1, INT32_MAX)) in.max_tokens = static_cast<int32_t>(*v);
  if (auto v = integer(body, "max_completion_tokens", 1, INT32_MAX)) in.max_tokens = static_cast<int32_t>(*v);
  if (auto v = integer(body, "n", 1, 1)) (void)v;
  in.stop = parse_stop(body);
  auto so = body.find("stream_options");
  if (so != body.end() && !so->is_null()) {
    if (!so->is_object()) mismatch("/stream_options", *so, "object");
    if (auto b = boolean(*so, "include_usage", "/stream_options")) in.include_usage = *b;
  }
}

}  // namespace

json parse_body(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos)
    throw ApiError(400, 3003, "Incomplete request: the request body is empty (expected a JSON object)");
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) bad_input("the request body is not valid JSON");
  if (!j.is_object()) mismatch("/", j, "object");
  return j;
}

GenInput parse_workers_ai(const json& body) {
  GenInput in;
  const bool has_prompt = body.contains("prompt") && !body["prompt"].is_null();
  const bool has_messages = body.contains("messages") && !body["messages"].is_null();
  if (has_prompt && has_messages) bad_input("'/' must have either 'prompt' or 'messages', not both");
  if (!has_prompt && !has_messages) bad_input("required properties at '/' are 'prompt' (or 'messages')");
  if (has_prompt) {
    in.prompt = *string(body, "prompt");
    size_t n = utf8_chars(in.prompt);
    if (n < 1) bad_input("must NOT have fewer than 1 characters at '/prompt'");
    if (n > 131072) bad_input("must NOT have more than 131072 characters at '/prompt'");
    if (auto r = boolean(body, "raw")) in.raw = *r;
    if (auto l = string(body, "lora"))
      throw ApiError(405, 5005, "LoRA adapters are not supported by this model (lora: '" + *l + "')");
  } else {
    for (const char* k : {"raw", "lora"})
      if (body.contains(k) && !body[k].is_null()) bad_input(std::string("'/") + k + "' is not allowed with 'messages'");
    in.use_messages = true;
    in.messages = parse_messages(body, false);
  }
  parse_sampling(body, in, false);
  if (auto v = integer(body, "max_tokens", 1, INT32_MAX)) in.max_tokens = static_cast<int32_t>(*v);
  return in;
}

GenInput parse_openai_chat(const json& body) {
  GenInput in;
  if (!body.contains("messages")) bad_input("required properties at '/' are 'messages'");
  in.use_messages = true;
  in.messages = parse_messages(body, true);
  parse_openai_common(body, in);
  if (auto v = boolean(body, "logprobs")) in.logprobs = *v;
  if (auto v = integer(body, "top_logprobs", 0, 20); v && *v > 0)
    bad_input("top_logprobs > 0 is not supported at '/top_logprobs' (only the chosen token's logprob is returned)");
  return in;
}

GenInput parse_openai_completion(const json& body) {
  GenInput in;
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) bad_input("required properties at '/' are 'prompt'");
  if (it->is_array()) {
    if (it->size() != 1 || !(*it)[0].is_string()) bad_input("'/prompt' must be a string or an array of exactly 1 string");
    in.prompt = (*it)[0].get<std::string>();
  } else if (it->is_string()) {
    in.prompt = it->get<std::string>();
  } else {
    mismatch("/prompt", *it, "string");
  }
  in.raw = true;
  in.max_tokens = 16;  // OpenAI's default for completions
  parse_openai_common(body, in);
  if (auto v = integer(body, "logprobs", 0, 5)) in.logprobs = true, (void)v;
  if (auto v = boolean(body, "echo"); v && *v) bad_input("echo is not supported at '/echo'");
  return in;
}

}  // namespace wai::server
