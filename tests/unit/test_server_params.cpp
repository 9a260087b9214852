// Request validation: documented defaults, ranges and the error codes/messages the API promises.
#include <gtest/gtest.h>

#include "server/errors.h"
#include "server/params.h"

using namespace wai::server;
using nlohmann::json;

namespace {

// Runs `f` and returns the ApiError it throws (fails the test when it does not throw).
template <class F>
ApiError error_of(F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "expected an ApiError";
  return ApiError(0, 0, "");
}

}  // namespace

TEST(ServerParams, WorkersAiDefaults) {
  GenInput in = parse_workers_ai(json{{"prompt", "Once upon a time"}});
  EXPECT_FALSE(in.use_messages);
  EXPECT_EQ(in.prompt, "Once upon a time");
  EXPECT_FALSE(in.raw);
  EXPECT_FALSE(in.stream);
  EXPECT_EQ(in.max_tokens, 256);
  EXPECT_FLOAT_EQ(in.sampling.temperature, 0.6f);
  EXPECT_EQ(in.sampling.seed, 0u);
}

TEST(ServerParams, WorkersAiAllFields) {
  GenInput in = parse_workers_ai(json{{"prompt", "x"}, {"raw", true}, {"stream", true}, {"max_tokens", 7},
                                      {"temperature", 0}, {"top_p", 1.5}, {"top_k", 50}, {"seed", 9999999999LL},
                                      {"repetition_penalty", 0}, {"frequency_penalty", 2}, {"presence_penalty", 0.5}});
  EXPECT_TRUE(in.raw);
  EXPECT_TRUE(in.stream);
  EXPECT_EQ(in.max_tokens, 7);
  EXPECT_EQ(in.sampling.temperature, 0.0f);
  EXPECT_EQ(in.sampling.top_p, 1.0f);  // values above 1 act as 1
  EXPECT_EQ(in.sampling.top_k, 50);
  EXPECT_EQ(in.sampling.seed, 9999999999ull);
  EXPECT_EQ(in.sampling.repetition_penalty, 1.0f);  // 0 = off
  EXPECT_EQ(in.sampling.frequency_penalty, 2.0f);
}

TEST(ServerParams, WorkersAiMessages) {
  GenInput in = parse_workers_ai(json::parse(R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]})"));
  ASSERT_TRUE(in.use_messages);
  ASSERT_EQ(in.messages.size(), 2u);
  EXPECT_EQ(in.messages[0].role, "system");
  EXPECT_EQ(in.messages[1].content, "u");
}

TEST(ServerParams, WorkersAiErrorsNameTheField) {
  auto e = error_of([] { parse_workers_ai(json::object()); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, 5006);
  EXPECT_NE(std::string(e.what()).find("AiError: Bad input: required properties at '/' are 'prompt'"), std::string::npos) << e.what();

  e = error_of([] { parse_workers_ai(json{{"prompt", "x"}, {"max_tokens", "12"}}); });
  EXPECT_EQ(std::string(e.what()), "AiError: Bad input: Type mismatch of '/max_tokens', 'string' not in 'integer'");

  e = error_of([] { parse_workers_ai(json{{"prompt", "x"}, {"temperature", 5.5}}); });
  EXPECT_EQ(std::string(e.what()), "AiError: Bad input: must be <= 5 at '/temperature'");

  e = error_of([] { parse_workers_ai(json{{"prompt", "x"}, {"top_k", 0}}); });
  EXPECT_NE(std::string(e.what()).find("'/top_k'"), std::string::npos);

  e = error_of([] { parse_workers_ai(json{{"prompt", "x"}, {"seed", 0}}); });
  EXPECT_NE(std::string(e.what()).find("'/seed'"), std::string::npos);

  e = error_of([] { parse_workers_ai(json{{"prompt", ""}}); });
  EXPECT_NE(std::string(e.what()).find("'/prompt'"), std::string::npos);

  e = error_of([] { parse_workers_ai(json{{"prompt", std::string(131073, 'a')}}); });
  EXPECT_NE(std::string(e.what()).find("131072"), std::string::npos);
  EXPECT_NO_THROW(parse_workers_ai(json{{"prompt", std::string(131072, 'a')}}));

  e = error_of([] { parse_workers_ai(json::parse(R"({"messages":[{"role":"user"}]})")); });
  EXPECT_NE(std::string(e.what()).find("'/messages/0'"), std::string::npos);

  e = error_of([] { parse_workers_ai(json::parse(R"({"messages":[{"role":"robot","content":"x"}]})")); });
  EXPECT_NE(std::string(e.what()).find("/messages/0/role"), std::string::npos);

  e = error_of([] { parse_workers_ai(json::parse(R"({"messages":[{"role":"user","content":"x"}],"raw":true})")); });
  EXPECT_NE(std::string(e.what()).find("'/raw'"), std::string::npos);

  e = error_of([] { parse_workers_ai(json{{"prompt", "x"}, {"lora", "adapter"}}); });
  EXPECT_EQ(e.status, 405);
  EXPECT_EQ(e.code, 5005);
}

TEST(ServerParams, BodyParsing) {
  auto e = error_of([] { parse_body(""); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, 3003);
  e = error_of([] { parse_body("{\"prompt\": "); });
  EXPECT_EQ(e.code, 5006);
  e = error_of([] { parse_body("[1,2]"); });
  EXPECT_EQ(e.code, 5006);
  EXPECT_EQ(parse_body(R"({"prompt":"hi"})")["prompt"], "hi");
}

TEST(ServerParams, OpenAiChat) {
  GenInput in = parse_openai_chat(json::parse(R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
      "max_completion_tokens":5,"stop":"\n","seed":0,"stream":true,"stream_options":{"include_usage":true},"logprobs":true,
      "options":{"rejectIfBusy":true}})"));
  EXPECT_EQ(in.model, "m");
  EXPECT_EQ(in.messages[0].content, "ab");
  EXPECT_EQ(in.max_tokens, 5);
  EXPECT_EQ(in.stop, std::vector<std::string>{"\n"});
  EXPECT_NE(in.sampling.seed, 0u);  // seed 0 is a real seed, not "random"
  EXPECT_TRUE(in.stream && in.include_usage && in.logprobs && in.reject_if_busy);

  auto e = error_of([] { parse_openai_chat(json::parse(R"({"messages":[{"role":"user","content":"x"}]})")); });
  EXPECT_NE(std::string(e.what()).find("'model'"), std::string::npos);
  e = error_of([] { parse_openai_chat(json::parse(R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":2})")); });
  EXPECT_NE(std::string(e.what()).find("'/n'"), std::string::npos);
  e = error_of([] { parse_openai_chat(json::parse(R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]})")); });
  EXPECT_NE(std::string(e.what()).find("'/stop'"), std::string::npos);
}

TEST(ServerParams, OpenAiCompletion) {
  GenInput in = parse_openai_completion(json::parse(R"({"model":"m","prompt":["Once"],"stop":["a","b"],"max_tokens":3})"));
  EXPECT_TRUE(in.raw);
  EXPECT_EQ(in.prompt, "Once");
  EXPECT_EQ(in.stop.size(), 2u);
  EXPECT_EQ(in.max_tokens, 3);
  EXPECT_EQ(parse_openai_completion(json::parse(R"({"model":"m","prompt":"x"})")).max_tokens, 16);
}

TEST(ServerErrors, Envelope) {
  HttpResponse r = error_response(ApiError(429, 3040, "busy", 1), false);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"result":null,"success":false,"errors":[{"code":3040,"message":"busy"}],"messages":[]})"));
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Retry-After");
  HttpResponse o = error_response(ApiError(400, 5007, "No such model x"), true);
  EXPECT_EQ(json::parse(o.body)["error"]["message"], "No such model x");
  // Invalid UTF-8 never throws.
  EXPECT_NO_THROW(dump_json(json{{"s", std::string("\xff\xfe")}}));
}
