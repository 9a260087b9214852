// Auth, SSE padding, URL decoding, catalog parsing and Prometheus output.
#include <gtest/gtest.h>

#include <set>

#include "server/auth.h"
#include "server/catalog.h"
#include "server/http_types.h"
#include "server/metrics.h"
#include "server/sse.h"
#include "util/error.h"

using namespace wai::server;

TEST(ServerAuth, BearerTokens) {
  Auth none;
  EXPECT_FALSE(none.enabled());
  EXPECT_TRUE(none.check(""));
  Auth a = Auth::from_sources("", "alpha, beta,,");
  EXPECT_EQ(a.size(), 2u);
  EXPECT_TRUE(a.check("Bearer alpha"));
  EXPECT_TRUE(a.check("bearer beta"));
  EXPECT_FALSE(a.check("Bearer alph"));
  EXPECT_FALSE(a.check("Bearer alphaa"));
  EXPECT_FALSE(a.check("alpha"));
  EXPECT_FALSE(a.check(""));
  EXPECT_FALSE(a.check("Basic alpha"));
  EXPECT_THROW(Auth::from_sources("/nonexistent/keys", ""), wai::Error);
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

TEST(ServerSse, Framing) {
  EXPECT_EQ(sse_event("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(std::string(kSseDone), "data: [DONE]\n\n");
  EXPECT_EQ(SsePadding::of_length(40), "abcdefghijklmnopqrstuvwxyz0123456789abcd");
  SsePadding p(42);
  std::set<size_t> lengths;
  for (int i = 0; i < 2000; ++i) {
    std::string s = p.next();
    ASSERT_GE(s.size(), 2u);
    ASSERT_LE(s.size(), 50u);
    ASSERT_EQ(s, SsePadding::of_length(s.size()));
    lengths.insert(s.size());
  }
  EXPECT_EQ(lengths.size(), 49u);  // every length 2..50 occurs
}

TEST(ServerHttp, UrlDecoding) {
  EXPECT_EQ(url_decode("%40cf%2Fmistral%2Fx", false), "@cf/mistral/x");
  EXPECT_EQ(url_decode("a+b%2", true), "a b%2");
  EXPECT_EQ(url_decode("%zz%", false), "%zz%");
  std::string path;
  std::map<std::string, std::string> q;
  parse_target("/ai/models/search?search=mis+tral&task=Text%20Generation&x", path, q);
  EXPECT_EQ(path, "/ai/models/search");
  EXPECT_EQ(q["search"], "mis tral");
  EXPECT_EQ(q["task"], "Text Generation");
  EXPECT_EQ(q.count("x"), 1u);
}

TEST(ServerCatalog, Parse) {
  auto entries = Catalog::parse(R"({"models":[
      {"name":"@cf/a/b","file":"m/b.gguf","aliases":["b"],"chat_template":"mistral-v0.1","sliding_window":4096},
      {"name":"@cf/c/d","file":"/abs/d.gguf","context_length":128}]})", "/cat/dir", "test");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].file, "/cat/dir/m/b.gguf");
  EXPECT_EQ(entries[0].sliding_window, 4096);
  EXPECT_EQ(entries[1].file, "/abs/d.gguf");
  EXPECT_EQ(entries[1].sliding_window, -1);
  EXPECT_EQ(entries[1].context_length, 128);
  EXPECT_THROW(Catalog::parse("{", ".", "t"), wai::Error);
  EXPECT_THROW(Catalog::parse(R"({"models":[{"file":"x"}]})", ".", "t"), wai::Error);
  EXPECT_THROW(Catalog::parse(R"({"models":[{"name":"a","file":"x","chat_template":"nope"}]})", ".", "t"), wai::Error);
  EXPECT_THROW(Catalog::parse(R"({"models":[{"name":"a","file":"x"},{"name":"b","file":"y","aliases":["a"]}]})", ".", "t"), wai::Error);
}

TEST(ServerCatalog, DefaultCatalogFile) {
  auto c = Catalog::from_file(std::string(WAI_SHARED_DIR) + "/../main/config/catalog.json", {});
  ModelHost* s = c->find("@cf/wai/stories260k");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->file_exists()) << s->entry().file;
  ModelHost* m = c->find("@cf/mistral/mistral-7b-instruct-v0.1");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->entry().sliding_window, 4096);
  EXPECT_EQ(m->entry().chat_template, "mistral-v0.1");
  EXPECT_EQ(c->find("@cf/nope"), nullptr);
}

TEST(ServerMetrics, Prometheus) {
  Metrics m;
  m.count_request("ai_run", 200, 0.02);
  m.count_request("ai_run", 200, 2.0);
  m.count_request("ai_run", 429, 0.001);
  m.add_tokens("@cf/x", 10, 5);
  m.observe_ttft("@cf/x", 0.003);
  ModelGauges g;
  g.model = "@cf/x";
  g.loaded = true;
  g.active = 2;
  g.kv_used = 1000;
  g.kv_cached = 2048;
  g.kv_budget = 4096;
  g.prefix_prompt_tokens = 100;
  g.prefix_hit_tokens = 90;
  g.kv_evictions = 7;
  g.preemptions = 1;
  std::string out = m.render({g}, 3);
  EXPECT_NE(out.find("wai_requests_total{route=\"ai_run\",status=\"200\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("wai_requests_total{route=\"ai_run\",status=\"429\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("wai_request_duration_seconds_bucket{route=\"ai_run\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("wai_request_duration_seconds_bucket{route=\"ai_run\",le=\"0.025000000000000001\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("wai_prompt_tokens_total{model=\"@cf/x\"} 10\n"), std::string::npos);
  EXPECT_NE(out.find("wai_generated_tokens_total{model=\"@cf/x\"} 5\n"), std::string::npos);
  EXPECT_NE(out.find("wai_time_to_first_token_seconds_count{model=\"@cf/x\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("wai_active_sequences{model=\"@cf/x\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("wai_kv_cache_used_bytes{model=\"@cf/x\"} 1000\n"), std::string::npos);
  EXPECT_NE(out.find("wai_kv_cache_cached_bytes{model=\"@cf/x\"} 2048\n"), std::string::npos);
  EXPECT_NE(out.find("wai_kv_cache_budget_bytes{model=\"@cf/x\"} 4096\n"), std::string::npos);
  EXPECT_NE(out.find("# TYPE wai_prefix_cache_hit_tokens_total counter\nwai_prefix_cache_hit_tokens_total{model=\"@cf/x\"} 90\n"),
            std::string::npos);
  EXPECT_NE(out.find("wai_prefix_cache_prompt_tokens_total{model=\"@cf/x\"} 100\n"), std::string::npos);
  EXPECT_NE(out.find("wai_kv_cache_evictions_total{model=\"@cf/x\"} 7\n"), std::string::npos);
  EXPECT_NE(out.find("wai_kv_preemptions_total{model=\"@cf/x\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("wai_open_connections 3\n"), std::string::npos);
  EXPECT_EQ(prom_escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
}
