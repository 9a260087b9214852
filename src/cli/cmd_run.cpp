// `wai run`: one prompt through the same runtime::Engine the server uses (one request, one slot).
// The generated text streams to stdout (flushed per token); load time and speed go to stderr.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/error.h"

namespace wai::cli {

namespace {

const char* kUsage = R"(usage: wai run -m MODEL.gguf -p PROMPT [options]

Generates a continuation of PROMPT (or, with --chat, the assistant's reply) and prints only the
generated text to stdout, streaming. Speed statistics go to stderr.

  -m, --model FILE        GGUF model
  -p, --prompt TEXT       the prompt (raw text, BOS added; with --chat: the user message)
  -n, --n-predict N       tokens to generate; -1 = until end of text or context full (default -1)
      --temp T            temperature; 0 = greedy (default 0.8)
      --top-k K           keep the K most likely tokens; 0 = off (default 40)
      --top-p P           nucleus sampling; 1 = off (default 0.95)
      --min-p P           drop tokens below P * max probability; 0 = off (default 0.05)
      --repeat-penalty R  penalize repeated tokens; 1 = off (default 1.0)
      --repeat-last-n N   tokens of history the penalty looks at (default 64)
      --seed S            random seed; 0 = pick one and print it (default 0)
      --chat              apply the model's chat template (detected from the GGUF metadata)
      --template NAME     chat template: mistral-v0.1 | llama2 | plain (implies --chat)
      --system TEXT       system message (with --chat)
      --stop STR          stop sequence, not printed (repeatable)
  -t, --threads N         threads (default: all cores)
  -b, --batch-size N      prompt tokens per forward pass (default 512)
      --sliding-window N  attention window; 0 = full attention (default: from the model)
  -c, --ctx N             context length (default: the model's trained context)
)";

// Args keeps only the last value of an option; --stop may repeat.
std::vector<std::string> all_values(int argc, char** argv, const std::string& name) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == name && i + 1 < argc) out.push_back(argv[++i]);
    else if (a.rfind(name + "=", 0) == 0) out.push_back(a.substr(name.size() + 1));
  }
  return out;
}

}  // namespace

int cmd_run(int argc, char** argv) {
  for (int i = 0; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
  Args args(argc, argv, {"--chat"},
            {"-m", "--model", "-p", "--prompt", "-n", "--n-predict", "--temp", "--top-k", "--top-p", "--min-p",
             "--repeat-penalty", "--repeat-last-n", "--seed", "--chat", "--template", "--system", "--stop", "-t",
             "--threads", "-b", "--batch-size", "--sliding-window", "-c", "--ctx"});
  if (!args.positionals().empty()) invalid("unexpected argument '" + args.positionals()[0] + "' (see --help)");
  auto model_path = args.get_any({"-m", "--model"});
  if (!model_path) invalid("missing -m MODEL.gguf (see --help)");
  auto prompt = args.get_any({"-p", "--prompt"});
  if (!prompt) invalid("missing -p PROMPT (see --help)");

  text::SamplingParams sp;
  sp.temperature = static_cast<float>(args.get_float({"--temp"}, 0.8));
  sp.top_k = static_cast<int32_t>(args.get_int({"--top-k"}, 40));
  sp.top_p = static_cast<float>(args.get_float({"--top-p"}, 0.95));
  sp.min_p = static_cast<float>(args.get_float({"--min-p"}, 0.05));
  sp.repetition_penalty = static_cast<float>(args.get_float({"--repeat-penalty"}, 1.0));
  sp.penalty_last_n = static_cast<int32_t>(args.get_int({"--repeat-last-n"}, 64));
  const int64_t seed = args.get_int({"--seed"}, 0);
  if (seed < 0) invalid("--seed must be >= 0");
  sp.seed = static_cast<uint64_t>(seed);
  if (sp.temperature < 0) invalid("--temp must be >= 0");
  if (sp.top_k < 0) invalid("--top-k must be >= 0");
  if (sp.seed == 0 && sp.temperature > 0) {
    sp.seed = std::random_device{}() | 1u;
    std::fprintf(stderr, "seed: %llu\n", static_cast<unsigned long long>(sp.seed));
  }

  const int64_t n_predict = args.get_int({"-n", "--n-predict"}, -1);
  if (n_predict < -1) invalid("-n must be -1 or >= 0");
  const unsigned hw = std::thread::hardware_concurrency();

  runtime::EngineOptions eo;
  eo.threads = static_cast<int>(args.get_int({"-t", "--threads"}, hw ? hw : 1));
  eo.parallel = 1;
  eo.max_queue = 0;
  eo.batch_size = static_cast<int>(args.get_int({"-b", "--batch-size"}, 512));
  eo.context_length = args.get_int({"-c", "--ctx"}, 0);
  if (eo.threads < 1) invalid("-t must be >= 1");
  model::LoadOptions lo;
  lo.sliding_window = args.get_int({"--sliding-window"}, -1);

  const auto t_load = std::chrono::steady_clock::now();
  auto model = model::Model::load(*model_path, lo);
  auto tok = std::make_shared<const text::Tokenizer>(text::Tokenizer::from_gguf(model->file()));
  runtime::Engine engine(model, tok, eo);
  std::fprintf(stderr, "loaded %s in %.2f s (context %lld, sliding window %lld, %d threads)\n", model_path->c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count(),
               static_cast<long long>(engine.context_length()),
               static_cast<long long>(model->config().sliding_window), eo.threads);

  runtime::GenerateRequest req;
  const bool chat = args.has("--chat") || args.has("--template");
  if (chat) {
    text::ChatTemplate tmpl = text::detect_chat_template(model->file());
    if (auto name = args.get("--template")) {
      auto t = text::chat_template_from_name(*name);
      if (!t) invalid("unknown chat template '" + *name + "' (mistral-v0.1, llama2, plain)");
      tmpl = *t;
    }
    std::vector<text::ChatMessage> msgs;
    if (auto sys = args.get("--system")) msgs.push_back({"system", *sys});
    msgs.push_back({"user", *prompt});
    req.prompt = text::apply_chat_template(tmpl, *tok, msgs);
  } else {
    if (args.has("--system")) invalid("--system needs --chat");
    req.prompt = tok->encode(*prompt, /*add_bos=*/true);
    req.continuation = true;  // the output continues the prompt's text
  }
  req.sampling = sp;
  req.max_tokens = static_cast<int32_t>(n_predict < 0 ? engine.context_length() : std::min<int64_t>(n_predict, INT32_MAX));
  req.stop = all_values(argc, argv, "--stop");

  std::promise<runtime::Completion> done;
  runtime::Callbacks cb;
  cb.on_token = [](const runtime::TokenEvent& ev) {
    if (!ev.text.empty()) {
      std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  };
  cb.on_done = [&done](const runtime::Completion& c) { done.set_value(c); };
  engine.submit(std::move(req), std::move(cb));
  const runtime::Completion c = done.get_future().get();
  std::fwrite(c.tail_text.data(), 1, c.tail_text.size(), stdout);
  std::fflush(stdout);
  if (c.reason == runtime::FinishReason::kError) fail(ErrorKind::kInternal, c.error);

  const double prefill_s = c.time_to_first_token_s;
  const double decode_s = c.total_s - c.time_to_first_token_s;
  std::fprintf(stderr, "\n\nprompt: %d tokens in %.3f s (%.1f tok/s)\n", c.prompt_tokens, prefill_s,
               prefill_s > 0 ? c.prompt_tokens / prefill_s : 0.0);
  // The first generated token comes out of the prefill pass; the rest are decode steps.
  const int decoded = c.completion_tokens > 1 ? c.completion_tokens - 1 : 0;
  std::fprintf(stderr, "generated: %d tokens, decode %.1f tok/s, finish: %s\n", c.completion_tokens,
               decode_s > 0 ? decoded / decode_s : 0.0, runtime::finish_reason_name(c.reason));
  return 0;
}

}  // namespace wai::cli
