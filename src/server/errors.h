// API errors and the Cloudflare v4 envelope.
//
// Every failure answers {"result":null,"success":false,"errors":[{"code":C,"message":M}],"messages":[]}
// (OpenAI routes answer {"error":{"message":M,"type":T,"code":C}} instead, which OpenAI SDKs surface).
//
// | case                                   | HTTP | code  |
// |----------------------------------------|------|-------|
// | body not JSON / schema violation       | 400  | 5006  | "AiError: Bad input: ..." naming the field
// | empty body (incomplete request)        | 400  | 3003  |
// | no such model                          | 400  | 5007  |
// | unknown route                          | 404  | 3042  |
// | model listed but its file is missing,  | 503  | 5007  | message names the file and the catalog;
// |   or it failed to load                 |      |       |   listed with "available": false
// | LoRA requested (unsupported)           | 405  | 5005  |
// | request body too large                 | 413  | 3006  |
// | prompt longer than the context         | 413  | 5021  | message: estimated and allowed tokens
// | queue full / busy with rejectIfBusy    | 429  | 3040  | Retry-After: 1
// | request timed out                      | 408  | 3007  |
// | missing / wrong API token              | 401  | 10000 | "Authentication error"
// | server shutting down                   | 503  | 3040  |
// | internal error                         | 500  | 5000  |
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "server/http_types.h"

namespace wai::server {

struct ApiError : std::runtime_error {
  ApiError(int status, int code, const std::string& message, int retry_after_s = 0)
      : std::runtime_error(message), status(status), code(code), retry_after_s(retry_after_s) {}
  int status;
  int code;
  int retry_after_s;  // > 0: send Retry-After
};

// Schema violation: 400 / 5006 with "AiError: Bad input: " + detail.
[[noreturn]] void bad_input(const std::string& detail);

nlohmann::json envelope_ok(nlohmann::json result);
nlohmann::json envelope_error(int code, const std::string& message);

// The error as an HTTP response in the v4 envelope, or (openai = true) in OpenAI's error shape.
HttpResponse error_response(const ApiError& e, bool openai);

// JSON dump that never throws on invalid UTF-8 (replaces bad bytes with U+FFFD).
std::string dump_json(const nlohmann::json& j);

}  // namespace wai::server
