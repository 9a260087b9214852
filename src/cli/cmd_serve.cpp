// `wai serve`: the Workers AI / OpenAI HTTP API over a catalog of models (or one -m file).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "kernels/cpu.h"
#include "server/api.h"
#include "server/http_server.h"
#include "util/error.h"

namespace wai::cli {

namespace {

const char* kHelp = R"(usage: wai serve [--catalog FILE | -m MODEL.gguf] [options]

  --catalog FILE        model catalog (default: config/catalog.json, from the working directory or
                        next to the source tree of this binary)
  -m, --model FILE      serve one GGUF file (named after its stem, also answers to the path)
  --chat-template NAME  with -m: mistral-v0.1 | llama2 | plain (default: detected from the GGUF)
  --sliding-window N    with -m: 0 = full attention (default: from the GGUF)
  --host H              bind address (default 127.0.0.1)
  --port P              port (default 8080; 0 = pick a free one, printed at start)
  --preload             load every available model at start (/health answers 503 until done)
  -t, --threads N       compute threads per model (default 2)
  --parallel N          sequences decoded together per model (default 4)
  --max-queue N         waiting requests per model beyond the slots; more -> 429 (default 64)
  --batch-size N        max tokens per forward pass (default 512)
  -c, --ctx-size N      per-sequence context limit (default: the model's; catalog entries override)
  --kv-cache-mib N      KV cache pool per model, in MiB (default: room for --parallel sequences at the
                        full context twice over, at most half the free memory; printed at load)
  --kv-block-size N     positions per KV block (default 16)
  --no-prefix-cache     do not reuse cached prompt prefixes across requests
  --api-key-file FILE   bearer tokens, one per line (also env WAI_API_KEYS, comma-separated)
  --no-sse-padding      omit the "p" padding field from Workers AI stream events
  --timeout S           generation deadline per request in seconds, queue wait included (default 600)
  --max-body-bytes N    request body limit (default 4194304)
  --idle-timeout S      keep-alive idle timeout (default 60)
  --header-timeout S    time to receive the request headers (default 10)
  --io-threads N        HTTP I/O threads (default 2)
  --grace S             on SIGINT/SIGTERM: seconds to let running requests finish (default 10)
  --quiet               no per-request log lines
)";

std::string default_catalog() {
  if (std::filesystem::exists("config/catalog.json")) return "config/catalog.json";
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto p = exe.parent_path().parent_path().parent_path() / "config" / "catalog.json";  // build/bin/wai -> repo
    if (std::filesystem::exists(p)) return p.string();
  }
  fail(ErrorKind::kNotFound, "no catalog: pass --catalog FILE or -m MODEL.gguf (config/catalog.json not found)");
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host.rfind("127.", 0) == 0;
}

std::chrono::milliseconds seconds_opt(const Args& a, const char* name, double def) {
  double s = a.get_float({name}, def);
  if (s <= 0) invalid(std::string("option '") + name + "' must be > 0");
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
}

}  // namespace

int cmd_serve(int argc, char** argv) {
  Args a(argc, argv, {"--preload", "--no-sse-padding", "--no-prefix-cache", "--quiet", "--help", "-h"},
         {"--catalog", "-m", "--model", "--chat-template", "--sliding-window", "--host", "--port", "--preload", "-t",
          "--threads", "--parallel", "--max-queue", "--batch-size", "-c", "--ctx-size", "--api-key-file",
          "--no-sse-padding", "--timeout", "--max-body-bytes", "--idle-timeout", "--header-timeout", "--io-threads",
          "--grace", "--quiet", "--help", "-h", "--kv-cache-mib", "--kv-block-size", "--no-prefix-cache"});
  if (a.has("--help") || a.has("-h")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (!a.positionals().empty()) invalid("unexpected argument '" + a.positionals()[0] + "'");

  runtime::EngineOptions eo;
  eo.threads = static_cast<int>(a.get_int({"-t", "--threads"}, 2));
  eo.parallel = static_cast<int>(a.get_int({"--parallel"}, 4));
  eo.max_queue = static_cast<int>(a.get_int({"--max-queue"}, 64));
  eo.batch_size = static_cast<int>(a.get_int({"--batch-size"}, 512));
  eo.context_length = a.get_int({"-c", "--ctx-size"}, 0);
  if (eo.threads < 1 || eo.parallel < 1 || eo.max_queue < 0 || eo.batch_size < 1 || eo.context_length < 0)
    invalid("serve: --threads, --parallel and --batch-size must be >= 1, --max-queue and --ctx-size >= 0");
  const int64_t kv_mib = a.get_int({"--kv-cache-mib"}, 0);
  if (a.has("--kv-cache-mib") && (kv_mib < 1 || kv_mib > (int64_t{1} << 24)))
    invalid("serve: --kv-cache-mib must be in 1..16777216");
  eo.kv_cache_bytes = kv_mib << 20;
  const int64_t block = a.get_int({"--kv-block-size"}, 16);
  if (block < 1 || block > 4096) invalid("serve: --kv-block-size must be in 1..4096");
  eo.kv_block_size = static_cast<int>(block);
  eo.prefix_cache = !a.has("--no-prefix-cache");

  std::unique_ptr<server::Catalog> catalog;
  if (auto m = a.get_any({"-m", "--model"})) {
    if (a.has("--catalog")) invalid("serve: pass either --catalog or -m, not both");
    if (!std::filesystem::is_regular_file(*m)) fail(ErrorKind::kNotFound, "serve: model file '" + *m + "' not found");
    catalog = server::Catalog::single(*m, eo, a.get_int({"--sliding-window"}, -1), a.get_or("--chat-template", ""));
  } else {
    catalog = server::Catalog::from_file(a.has("--catalog") ? *a.get("--catalog") : default_catalog(), eo);
  }

  const char* env_keys = std::getenv("WAI_API_KEYS");
  server::Auth auth = server::Auth::from_sources(a.get_or("--api-key-file", ""), env_keys ? env_keys : "");

  server::ApiOptions ao;
  ao.sse_padding = !a.has("--no-sse-padding");
  ao.request_timeout = seconds_opt(a, "--timeout", 600);
  ao.log_requests = !a.has("--quiet");

  server::HttpServerOptions ho;
  ho.host = a.get_or("--host", "127.0.0.1");
  int64_t port = a.get_int({"--port"}, 8080);
  if (port < 0 || port > 65535) invalid("serve: --port must be in 0..65535");
  ho.port = static_cast<uint16_t>(port);
  ho.io_threads = static_cast<int>(a.get_int({"--io-threads"}, 2));
  int64_t max_body = a.get_int({"--max-body-bytes"}, 4 << 20);
  if (max_body < 1) invalid("serve: --max-body-bytes must be >= 1");
  ho.max_body_bytes = static_cast<size_t>(max_body);
  ho.idle_timeout = seconds_opt(a, "--idle-timeout", 60);
  ho.header_timeout = seconds_opt(a, "--header-timeout", 10);
  auto grace = seconds_opt(a, "--grace", 10);

  if (!auth.enabled() && !is_loopback(ho.host))
    std::fprintf(stderr, "wai serve: WARNING: listening on %s without API keys: anyone who can reach it can use it "
                         "(set --api-key-file or WAI_API_KEYS)\n", ho.host.c_str());

  server::Api api(std::move(catalog), std::move(auth), ao);
  server::HttpServer http(ho, [&api](server::HttpRequest& req, std::shared_ptr<server::Exchange> ex) {
    api.handle(req, std::move(ex));
  });
  api.set_connections_probe([&http] { return http.open_connections(); });

  std::fprintf(stderr, "wai serve: CPU kernels: %s (%s; --cpu / WAI_CPU: %s)\n",
               kernels::cpu_level_name(kernels::cpu_level()), kernels::cpu_description().c_str(), kernels::cpu_level_choices());
  for (const auto& m : api.catalog().models()) {
    const auto& e = m->entry();
    std::fprintf(stderr, "wai serve: model %s -> %s%s\n", e.name.c_str(), e.file.c_str(),
                 m->file_exists() ? "" : " (file missing: unavailable)");
  }
  if (a.has("--preload"))
    for (const auto& m : api.catalog().models())
      if (m->file_exists())
        m->acquire([name = m->entry().name](std::shared_ptr<server::LoadedModel> lm, std::string err) {
          if (lm) std::fprintf(stderr, "wai serve: loaded %s\n", name.c_str());
          else std::fprintf(stderr, "wai serve: cannot load %s: %s\n", name.c_str(), err.c_str());
        });

  std::string shown_host = ho.host.find(':') != std::string::npos ? "[" + ho.host + "]" : ho.host;
  std::fprintf(stderr, "wai: listening on http://%s:%u\n", shown_host.c_str(), static_cast<unsigned>(http.port()));
  std::fprintf(stdout, "wai: listening on http://%s:%u\n", shown_host.c_str(), static_cast<unsigned>(http.port()));
  std::fflush(stdout);
  std::fflush(stderr);

  // Graceful stop: close the listener, let running requests finish for `grace` (then the engines
  // cancel them), wait for their replies to be written, stop the I/O threads.
  std::thread stopper;
  http.run([&] {
    if (stopper.joinable()) return;
    std::fprintf(stderr, "wai serve: stopping (grace %.1f s)\n", grace.count() / 1000.0);
    http.stop_accepting();
    api.set_draining();
    stopper = std::thread([&] {
      std::vector<std::thread> ts;
      for (const auto& m : api.catalog().models()) ts.emplace_back([&m, grace] { m->shutdown(grace); });
      for (auto& t : ts) t.join();
      auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while ((api.jobs_in_flight() > 0 || http.busy_requests() > 0) && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      http.stop();
    });
  });
  if (stopper.joinable()) stopper.join();
  // Engines go before the HTTP server: their last callbacks post to its I/O context.
  for (const auto& m : api.catalog().models()) m->unload();
  std::fprintf(stderr, "wai serve: stopped\n");
  return 0;
}

}  // namespace wai::cli
