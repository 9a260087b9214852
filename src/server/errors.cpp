#include "server/errors.h"

namespace wai::server {

void bad_input(const std::string& detail) { throw ApiError(400, 5006, "AiError: Bad input: " + detail); }

nlohmann::json envelope_ok(nlohmann::json result) {
  return {{"result", std::move(result)}, {"success", true}, {"errors", nlohmann::json::array()},
          {"messages", nlohmann::json::array()}};
}

nlohmann::json envelope_error(int code, const std::string& message) {
  return {{"result", nullptr},
          {"success", false},
          {"errors", nlohmann::json::array({{{"code", code}, {"message", message}}})},
          {"messages", nlohmann::json::array()}};
}

static const char* openai_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 408: return "timeout_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

HttpResponse error_response(const ApiError& e, bool openai) {
  HttpResponse r;
  r.status = e.status;
  nlohmann::json body = openai ? nlohmann::json{{"error", {{"message", e.what()}, {"type", openai_type(e.status)},
                                                           {"param", nullptr}, {"code", e.code}}}}
                               : envelope_error(e.code, e.what());
  r.body = dump_json(body);
  if (e.retry_after_s > 0) r.headers.emplace_back("Retry-After", std::to_string(e.retry_after_s));
  return r;
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace wai::server
