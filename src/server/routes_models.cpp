// Catalog routes: OpenAI's model list, Workers AI's model search and input/output schemas.
#include <algorithm>
#include <cctype>
#include <functional>

#include "server/api.h"
#include "server/errors.h"

namespace wai::server {

using nlohmann::json;

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string task_display_name(const std::string& task) {
  if (task == "text-generation") return "Text Generation";
  std::string s = task;
  bool up = true;
  for (auto& c : s) {
    if (c == '-') c = ' ', up = true;
    else if (up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c))), up = false;
  }
  return s;
}

// A stable UUID-shaped id derived from the model name.
std::string model_uuid(const std::string& name) {
  uint64_t h1 = std::hash<std::string>{}(name), h2 = std::hash<std::string>{}(name + "#wai");
  char b[40];
  std::snprintf(b, sizeof b, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(h1 >> 32), static_cast<unsigned>(h1 >> 16) & 0xffff,
                static_cast<unsigned>(h1) & 0xffff, static_cast<unsigned>(h2 >> 48),
                static_cast<unsigned long long>(h2 & 0xffffffffffffull));
  return b;
}

int64_t context_window(const ModelHost& m) {
  if (auto lm = m.loaded()) return lm->engine->context_length();
  return m.entry().context_length;
}

json model_json(const ModelHost& m) {
  const auto& e = m.entry();
  bool available = m.loaded() || m.file_exists();
  json props = json::array();
  if (int64_t cw = context_window(m); cw > 0) props.push_back({{"property_id", "context_window"}, {"value", std::to_string(cw)}});
  if (e.sliding_window >= 0) props.push_back({{"property_id", "sliding_window"}, {"value", std::to_string(e.sliding_window)}});
  props.push_back({{"property_id", "lora"}, {"value", "false"}});
  props.push_back({{"property_id", "available"}, {"value", available ? "true" : "false"}});
  return {{"id", model_uuid(e.name)},
          {"source", 1},
          {"name", e.name},
          {"description", e.description},
          {"task", {{"id", model_uuid("task:" + e.task)}, {"name", task_display_name(e.task)}, {"description", ""}}},
          {"tags", json::array()},
          {"properties", props},
          {"available", available}};
}

json text_generation_schema() {
  json num = {{"type", "number"}};
  json common = {
      {"stream", {{"type", "boolean"}, {"default", false}}},
      {"max_tokens", {{"type", "integer"}, {"default", 256}}},
      {"temperature", {{"type", "number"}, {"default", 0.6}, {"minimum", 0}, {"maximum", 5}}},
      {"top_p", {{"type", "number"}, {"minimum", 0}, {"maximum", 2}}},
      {"top_k", {{"type", "integer"}, {"minimum", 1}, {"maximum", 50}}},
      {"seed", {{"type", "integer"}, {"minimum", 1}, {"maximum", 9999999999LL}}},
      {"repetition_penalty", {{"type", "number"}, {"minimum", 0}, {"maximum", 2}}},
      {"frequency_penalty", {{"type", "number"}, {"minimum", 0}, {"maximum", 2}}},
      {"presence_penalty", {{"type", "number"}, {"minimum", 0}, {"maximum", 2}}},
  };
  json prompt_props = common;
  prompt_props["prompt"] = {{"type", "string"}, {"minLength", 1}, {"maxLength", 131072}};
  prompt_props["raw"] = {{"type", "boolean"}, {"default", false}};
  prompt_props["lora"] = {{"type", "string"}};
  json msg_props = common;
  msg_props["messages"] = {
      {"type", "array"},
      {"items",
       {{"type", "object"},
        {"properties", {{"role", {{"type", "string"}, {"enum", {"system", "user", "assistant", "tool"}}}}, {"content", {{"type", "string"}}}}},
        {"required", {"role", "content"}}}}};
  json input = {{"type", "object"},
                {"oneOf", json::array({{{"title", "Prompt"}, {"properties", prompt_props}, {"required", {"prompt"}}},
                                       {{"title", "Messages"}, {"properties", msg_props}, {"required", {"messages"}}}})}};
  json usage = {{"type", "object"},
                {"properties", {{"prompt_tokens", {{"type", "number"}}}, {"completion_tokens", {{"type", "number"}}}, {"total_tokens", {{"type", "number"}}}}}};
  json output = {{"oneOf", json::array({{{"type", "object"},
                                         {"properties", {{"response", {{"type", "string"}}}, {"usage", usage}}},
                                         {"required", {"response"}}},
                                        {{"type", "string"}, {"format", "binary"}, {"description", "text/event-stream when stream is true"}}})}};
  return {{"input", input}, {"output", output}};
}

}  // namespace

void Api::openai_models(std::shared_ptr<Exchange>& ex) {
  json data = json::array();
  for (const auto& m : catalog_->models()) {
    if (!m->loaded() && !m->file_exists()) continue;
    data.push_back({{"id", m->entry().name}, {"object", "model"}, {"created", 0},
                    {"owned_by", m->entry().author.empty() ? "wai" : m->entry().author}});
  }
  HttpResponse r;
  r.body = dump_json({{"object", "list"}, {"data", data}});
  ex->respond(std::move(r));
}

void Api::models_search(HttpRequest& req, std::shared_ptr<Exchange>& ex) {
  auto q = [&](const char* k) {
    auto it = req.query.find(k);
    return it == req.query.end() ? std::string() : it->second;
  };
  auto int_param = [&](const char* k, int def, int lo, int hi) {
    std::string v = q(k);
    if (v.empty()) return def;
    char* end = nullptr;
    long n = std::strtol(v.c_str(), &end, 10);
    if (*end != '\0' || n < lo || n > hi)
      bad_input("query parameter '" + std::string(k) + "' must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
    return static_cast<int>(n);
  };
  std::string search = lower(q("search")), task = lower(q("task")), author = lower(q("author"));
  int page = int_param("page", 1, 1, 1000000), per_page = int_param("per_page", 50, 1, 1000);
  std::vector<json> hits;
  for (const auto& m : catalog_->models()) {
    const auto& e = m->entry();
    if (!search.empty() && lower(e.name).find(search) == std::string::npos && lower(e.description).find(search) == std::string::npos)
      continue;
    if (!task.empty() && lower(e.task) != task && lower(task_display_name(e.task)) != task) continue;
    if (!author.empty() && lower(e.author) != author) continue;
    hits.push_back(model_json(*m));
  }
  json result = json::array();
  size_t from = static_cast<size_t>(page - 1) * per_page;
  for (size_t i = from; i < hits.size() && i < from + per_page; ++i) result.push_back(hits[i]);
  json body = envelope_ok(result);
  body["result_info"] = {{"page", page}, {"per_page", per_page}, {"count", result.size()}, {"total_count", hits.size()}};
  HttpResponse r;
  r.body = dump_json(body);
  ex->respond(std::move(r));
}

void Api::models_schema(HttpRequest& req, std::shared_ptr<Exchange>& ex) {
  auto it = req.query.find("model");
  if (it == req.query.end() || it->second.empty()) bad_input("required query parameter 'model' is missing");
  ModelHost* h = catalog_->find(it->second);
  if (!h) throw ApiError(400, 5007, "No such model " + it->second + " or task");
  HttpResponse r;
  r.body = dump_json(envelope_ok(text_generation_schema()));
  ex->respond(std::move(r));
}

}  // namespace wai::server
