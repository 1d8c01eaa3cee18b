/*
 * Copyright 2026, swift-grpc-mesh contributors
 *
 * Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

// echo_client: a closed-loop gRPC C++ load generator that needs no generated
// code (grpc::GenericStub, completion queues, one thread per queue). It keeps
// --concurrency RPCs (or ping-pong streams) in flight and prints one JSON
// object with throughput, latency percentiles and CPU per RPC. See README.md.

#include <grpc/grpc.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxMessageSize = 64 * 1024 * 1024;
// Generous: under a sanitizer, with the test suites running together, a TLS handshake with the
// Swift server once took longer than 5 s.
constexpr auto kConnectTimeout = std::chrono::seconds(30);
constexpr auto kDrainTimeout = std::chrono::seconds(5);

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "echo_client: %s\n", message.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  // No static destructors: gRPC threads may be running.
  std::_Exit(1);
}

void Usage(FILE* out) {
  std::fprintf(
      out,
      "usage: echo_client --target HOST:PORT [--method /test.Echo/Echo]\n"
      "                   [--mode unary|bidi] [--size BYTES]\n"
      "                   [--concurrency N] [--channels K] [--threads N]\n"
      "                   [--duration SECONDS] [--warmup SECONDS] [--rpcs N]\n"
      "                   [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]\n"
      "                   [--server-name NAME] [--metadata KEY:VALUE]...\n"
      "  --mode          unary (default): one RPC per request; bidi: one\n"
      "                  stream per --concurrency, ping-pong round trips\n"
      "  --size BYTES    request payload, sent as the raw message (default 64)\n"
      "  --concurrency N RPCs or streams in flight (default 1)\n"
      "  --channels K    channels (connections) to spread them on (default 1)\n"
      "  --threads N     completion queue threads (default: number of cores,\n"
      "                  at most N)\n"
      "  --duration S    measured seconds (default 5); --warmup S (default 1)\n"
      "  --rpcs N        end the measurement once N RPCs (round trips) have\n"
      "                  succeeded in it; --duration is then the limit\n"
      "  --tls-ca FILE   TLS, trusting this CA (without: system roots when\n"
      "                  --tls-cert is given); --tls-cert/--tls-key: client\n"
      "                  certificate for mutual TLS\n"
      "  --server-name   override the name checked in the server certificate\n"
      "  --metadata K:V  add this metadata to every RPC (repeatable)\n"
      "Prints one JSON object on stdout.\n");
}

bool ParseLong(const std::string& text, long min, long max, long* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0') return false;
  if (value < min || value > max) return false;
  *out = value;
  return true;
}

bool ParseDouble(const std::string& text, double min, double max,
                 double* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (errno != 0 || end == text.c_str() || *end != '\0') return false;
  if (!std::isfinite(value) || value < min || value > max) return false;
  *out = value;
  return true;
}

std::string ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(std::string("cannot read ") + what + " '" + path + "'");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) Fail(std::string("cannot read ") + what + " '" + path + "'");
  return contents.str();
}

struct Options {
  std::string target;
  std::string method = "/test.Echo/Echo";
  bool bidi = false;
  long size = 64;
  long concurrency = 1;
  long channels = 1;
  long threads = 0;  // 0: number of cores, at most concurrency
  double duration = 5;
  double warmup = 1;
  long rpcs = 0;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string server_name;
  std::vector<std::pair<std::string, std::string>> metadata;
  bool tls = false;
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      Usage(stdout);
      std::exit(0);
    }
    std::string value;
    bool has_inline_value = false;
    if (arg.rfind("--", 0) == 0) {
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_inline_value = true;
      }
    }
    auto next = [&]() -> std::string {
      if (has_inline_value) return value;
      if (i + 1 >= argc) Fail("option " + arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--target") {
      options.target = next();
    } else if (arg == "--method") {
      options.method = next();
      if (options.method.empty() || options.method[0] != '/')
        Fail("--method must look like /package.Service/Method, got '" +
             options.method + "'");
    } else if (arg == "--mode") {
      std::string v = next();
      if (v == "unary") {
        options.bidi = false;
      } else if (v == "bidi") {
        options.bidi = true;
      } else {
        Fail("--mode must be unary or bidi, got '" + v + "'");
      }
    } else if (arg == "--size") {
      std::string v = next();
      if (!ParseLong(v, 0, kMaxMessageSize - 16, &options.size))
        Fail("--size must be an integer in 0..." +
             std::to_string(kMaxMessageSize - 16) + ", got '" + v + "'");
    } else if (arg == "--concurrency") {
      std::string v = next();
      if (!ParseLong(v, 1, 100000, &options.concurrency))
        Fail("--concurrency must be an integer in 1...100000, got '" + v +
             "'");
    } else if (arg == "--channels") {
      std::string v = next();
      if (!ParseLong(v, 1, 1024, &options.channels))
        Fail("--channels must be an integer in 1...1024, got '" + v + "'");
    } else if (arg == "--threads") {
      std::string v = next();
      if (!ParseLong(v, 1, 256, &options.threads))
        Fail("--threads must be an integer in 1...256, got '" + v + "'");
    } else if (arg == "--duration") {
      std::string v = next();
      if (!ParseDouble(v, 0.001, 86400, &options.duration))
        Fail("--duration must be a number of seconds in 0.001...86400, got '" +
             v + "'");
    } else if (arg == "--rpcs") {
      std::string v = next();
      if (!ParseLong(v, 1, 1000000000, &options.rpcs))
        Fail("--rpcs must be an integer in 1...1000000000, got '" + v + "'");
    } else if (arg == "--warmup") {
      std::string v = next();
      if (!ParseDouble(v, 0, 86400, &options.warmup))
        Fail("--warmup must be a number of seconds in 0...86400, got '" + v +
             "'");
    } else if (arg == "--tls-ca") {
      options.tls_ca = next();
    } else if (arg == "--tls-cert") {
      options.tls_cert = next();
    } else if (arg == "--tls-key") {
      options.tls_key = next();
    } else if (arg == "--server-name") {
      options.server_name = next();
      if (options.server_name.empty()) Fail("--server-name must not be empty");
    } else if (arg == "--metadata") {
      std::string v = next();
      size_t colon = v.find(':');
      if (colon == 0 || colon == std::string::npos)
        Fail("--metadata must be KEY:VALUE, got '" + v + "'");
      std::string key = v.substr(0, colon);
      for (char& c : key) c = static_cast<char>(std::tolower(c));
      if (key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_.") !=
          std::string::npos)
        Fail("--metadata key may only have a-z 0-9 - _ ., got '" + key + "'");
      size_t start = v.find_first_not_of(' ', colon + 1);
      std::string text = start == std::string::npos ? "" : v.substr(start);
      bool binary = key.size() > 4 && key.compare(key.size() - 4, 4, "-bin") == 0;
      for (char c : text)
        if (!binary && (c < 0x20 || c > 0x7e))
          Fail("--metadata value must be printable ASCII, key '" + key + "'");
      options.metadata.emplace_back(key, text);
    } else {
      std::fprintf(stderr, "echo_client: unknown option '%s'\n", argv[i]);
      Usage(stderr);
      std::exit(1);
    }
  }
  if (options.target.empty()) Fail("--target HOST:PORT is required");
  if (options.tls_cert.empty() != options.tls_key.empty())
    Fail("--tls-cert and --tls-key go together");
  options.tls = !options.tls_ca.empty() || !options.tls_cert.empty();
  if (!options.server_name.empty() && !options.tls)
    Fail("--server-name needs TLS (--tls-ca)");
  if (options.threads == 0) {
    unsigned cores = std::thread::hardware_concurrency();
    options.threads = cores == 0 ? 1 : static_cast<long>(cores);
  }
  options.threads = std::min(options.threads, options.concurrency);
  return options;
}

// ---------------------------------------------------------------------------
// Shared state

std::atomic<bool> g_measuring{false};
std::atomic<bool> g_stop{false};
std::atomic<long> g_active_slots{0};
std::mutex g_drain_mutex;
std::condition_variable g_drain_cv;

// Per completion queue thread; the mutex is only contended when main reads.
struct Stats {
  std::mutex mutex;
  std::vector<uint64_t> latencies_ns;  // successful RPCs while measuring
  uint64_t errors = 0;                 // failed RPCs while measuring
  uint64_t all_ok = 0;                 // including warmup
  uint64_t all_errors = 0;             // including warmup
  std::string last_error;
};

// With --rpcs: how many to measure, and how many succeeded while measuring.
std::atomic<uint64_t> g_target_rpcs{0};
std::atomic<uint64_t> g_measured_ok{0};
std::mutex g_target_mutex;
std::condition_variable g_target_cv;

void Record(Stats* stats, Clock::time_point start, const grpc::Status& status) {
  Clock::time_point end = Clock::now();
  bool measuring = g_measuring.load(std::memory_order_acquire);
  uint64_t target = g_target_rpcs.load(std::memory_order_relaxed);
  if (measuring && status.ok() && target > 0 &&
      g_measured_ok.fetch_add(1) + 1 == target) {
    std::lock_guard<std::mutex> lock(g_target_mutex);
    g_target_cv.notify_all();
  }
  std::lock_guard<std::mutex> lock(stats->mutex);
  if (status.ok()) {
    ++stats->all_ok;
    if (measuring)
      stats->latencies_ns.push_back(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(end - start)
              .count()));
  } else {
    ++stats->all_errors;
    if (measuring) ++stats->errors;
    if (stats->last_error.empty() || stats->all_errors % 1024 == 1)
      stats->last_error = "code " +
                          std::to_string(static_cast<int>(status.error_code())) +
                          ": " + status.error_message();
  }
}

void SlotDone() {
  if (g_active_slots.fetch_sub(1) == 1) {
    std::lock_guard<std::mutex> lock(g_drain_mutex);
    g_drain_cv.notify_all();
  }
}

// A slot keeps one RPC (unary) or one stream (bidi) in flight. All its
// completions arrive on one completion queue served by one thread, so a slot
// is only ever touched by that thread (after main starts it).
// Tags are the slot's address, with bit 0 set for a bidi write.
class Slot {
 public:
  virtual ~Slot() = default;
  virtual void Start() = 0;
  virtual void Proceed(bool ok, bool write_tag) = 0;
};

struct SlotSetup {
  grpc::GenericStub* stub;
  grpc::CompletionQueue* cq;
  Stats* stats;
  const grpc::ByteBuffer* request;
  const std::string* method;
  const std::vector<std::pair<std::string, std::string>>* metadata;
};

void AddMetadata(const SlotSetup& setup, grpc::ClientContext* context) {
  for (const auto& [key, value] : *setup.metadata)
    context->AddMetadata(key, value);
}

class UnarySlot final : public Slot {
 public:
  explicit UnarySlot(const SlotSetup& setup) : s_(setup) {}

  void Start() override {
    if (g_stop.load(std::memory_order_relaxed)) {
      SlotDone();
      return;
    }
    context_.emplace();
    AddMetadata(s_, &*context_);
    call_ = s_.stub->PrepareUnaryCall(&*context_, *s_.method, *s_.request,
                                      s_.cq);
    start_ = Clock::now();
    call_->StartCall();
    call_->Finish(&response_, &status_, this);
  }

  void Proceed(bool /*ok*/, bool /*write_tag*/) override {
    Record(s_.stats, start_, status_);
    // The reader lives in the call's arena: destroy it before the context.
    call_.reset();
    context_.reset();
    response_.Clear();
    Start();
  }

 private:
  SlotSetup s_;
  std::optional<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<grpc::ByteBuffer>> call_;
  grpc::ByteBuffer response_;
  grpc::Status status_;
  Clock::time_point start_;
};

// Ping-pong on one stream: write one message and read one (both operations
// in flight together), repeat. Each round trip counts as one RPC.
class BidiSlot final : public Slot {
 public:
  explicit BidiSlot(const SlotSetup& setup) : s_(setup) {}

  void Start() override {
    if (g_stop.load(std::memory_order_relaxed)) {
      SlotDone();
      return;
    }
    context_.emplace();
    AddMetadata(s_, &*context_);
    stream_ = s_.stub->PrepareCall(&*context_, *s_.method, s_.cq);
    state_ = State::kStarting;
    failed_ = false;
    stream_->StartCall(this);
  }

  void Proceed(bool ok, bool /*write_tag*/) override {
    switch (state_) {
      case State::kStarting:
        if (!ok) {
          Finish(/*failed=*/true);
          return;
        }
        Ping();
        return;
      case State::kPinging:
        if (!ok) failed_ = true;
        if (--pending_ > 0) return;
        if (failed_) {
          Finish(/*failed=*/true);
          return;
        }
        Record(s_.stats, start_, grpc::Status::OK);
        Ping();
        return;
      case State::kClosing:
        Finish(/*failed=*/false);
        return;
      case State::kFinishing:
        if (failed_ && status_.ok())
          status_ = grpc::Status(grpc::StatusCode::UNKNOWN,
                                 "stream ended before the echo");
        if (failed_ || !status_.ok()) Record(s_.stats, start_, status_);
        stream_.reset();
        context_.reset();
        Start();
        return;
    }
  }

 private:
  enum class State { kStarting, kPinging, kClosing, kFinishing };

  void Ping() {
    if (g_stop.load(std::memory_order_relaxed)) {
      state_ = State::kClosing;
      stream_->WritesDone(this);
      return;
    }
    state_ = State::kPinging;
    pending_ = 2;
    start_ = Clock::now();
    response_.Clear();
    stream_->Read(&response_, this);
    stream_->Write(*s_.request, WriteTag());
  }

  void Finish(bool failed) {
    failed_ = failed;
    state_ = State::kFinishing;
    stream_->Finish(&status_, this);
  }

  void* WriteTag() {
    return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(this) | 1);
  }

  SlotSetup s_;
  std::optional<grpc::ClientContext> context_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> stream_;
  grpc::ByteBuffer response_;
  grpc::Status status_;
  State state_ = State::kStarting;
  int pending_ = 0;
  bool failed_ = false;
  Clock::time_point start_;
};

void ServeQueue(grpc::CompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) {
    uintptr_t bits = reinterpret_cast<uintptr_t>(tag);
    reinterpret_cast<Slot*>(bits & ~uintptr_t{1})->Proceed(ok, bits & 1);
  }
}

double CpuMicros(const rusage& usage) {
  return usage.ru_utime.tv_sec * 1e6 + usage.ru_utime.tv_usec +
         usage.ru_stime.tv_sec * 1e6 + usage.ru_stime.tv_usec;
}

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The status of one fail-fast RPC, to explain why a channel did not connect.
grpc::Status Probe(grpc::GenericStub* stub, const std::string& method,
                   const grpc::ByteBuffer& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(2));
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub->UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                  [&done](grpc::Status status) { done.set_value(status); });
  return done.get_future().get();
}

std::chrono::nanoseconds Seconds(double seconds) {
  return std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9));
}

}  // namespace

int main(int argc, char** argv) {
  Options options = ParseOptions(argc, argv);
  signal(SIGPIPE, SIG_IGN);

  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca.empty())
      ssl.pem_root_certs = ReadFile(options.tls_ca, "--tls-ca");
    if (!options.tls_cert.empty()) {
      ssl.pem_cert_chain = ReadFile(options.tls_cert, "--tls-cert");
      ssl.pem_private_key = ReadFile(options.tls_key, "--tls-key");
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }

  std::string payload(static_cast<size_t>(options.size), 'x');
  grpc::Slice slice(payload);
  const grpc::ByteBuffer request(&slice, 1);

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (long i = 0; i < options.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxMessageSize);
    args.SetMaxSendMessageSize(kMaxMessageSize);
    // Channels with equal arguments would share one connection.
    args.SetInt("swift_grpc_mesh.bench_channel", static_cast<int>(i));
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    if (!options.server_name.empty())
      args.SetSslTargetNameOverride(options.server_name);
    channels.push_back(
        grpc::CreateCustomChannel(options.target, credentials, args));
    stubs.push_back(std::make_unique<grpc::GenericStub>(channels.back()));
  }
  for (long i = 0; i < options.channels; ++i) {
    if (!channels[i]->WaitForConnected(std::chrono::system_clock::now() +
                                       kConnectTimeout)) {
      grpc::Status status = Probe(stubs[i].get(), options.method, request);
      Fail("cannot connect to " + options.target + " within 30 s" +
           (status.ok() ? std::string()
                        : " (code " +
                              std::to_string(
                                  static_cast<int>(status.error_code())) +
                              ": " + status.error_message() + ")"));
    }
  }

  std::vector<std::unique_ptr<grpc::CompletionQueue>> cqs;
  std::vector<std::unique_ptr<Stats>> stats;
  for (long i = 0; i < options.threads; ++i) {
    cqs.push_back(std::make_unique<grpc::CompletionQueue>());
    stats.push_back(std::make_unique<Stats>());
    // Room for about 200k RPC/s without growing while measuring.
    stats.back()->latencies_ns.reserve(
        std::min<size_t>(static_cast<size_t>(options.duration * 200000 /
                                             options.threads) + 1024,
                         size_t{1} << 26));
  }
  std::vector<std::unique_ptr<Slot>> slots;
  for (long i = 0; i < options.concurrency; ++i) {
    SlotSetup setup{stubs[i % options.channels].get(),
                    cqs[i % options.threads].get(),
                    stats[i % options.threads].get(), &request,
                    &options.method, &options.metadata};
    if (options.bidi) {
      slots.push_back(std::make_unique<BidiSlot>(setup));
    } else {
      slots.push_back(std::make_unique<UnarySlot>(setup));
    }
  }
  std::vector<std::thread> threads;
  for (auto& cq : cqs) threads.emplace_back(ServeQueue, cq.get());

  g_target_rpcs.store(static_cast<uint64_t>(options.rpcs));
  g_active_slots.store(options.concurrency);
  for (auto& slot : slots) slot->Start();

  std::this_thread::sleep_for(Seconds(options.warmup));
  rusage usage_start{};
  getrusage(RUSAGE_SELF, &usage_start);
  Clock::time_point start = Clock::now();
  g_measuring.store(true, std::memory_order_release);

  if (options.rpcs > 0) {
    std::unique_lock<std::mutex> lock(g_target_mutex);
    g_target_cv.wait_for(lock, Seconds(options.duration), [] {
      return g_measured_ok.load() >= g_target_rpcs.load();
    });
  } else {
    std::this_thread::sleep_for(Seconds(options.duration));
  }
  g_measuring.store(false, std::memory_order_release);
  Clock::time_point end = Clock::now();
  rusage usage_end{};
  getrusage(RUSAGE_SELF, &usage_end);
  g_stop.store(true);

  bool drained = false;
  {
    std::unique_lock<std::mutex> lock(g_drain_mutex);
    drained = g_drain_cv.wait_for(lock, kDrainTimeout, [] {
      return g_active_slots.load() == 0;
    });
  }

  std::vector<uint64_t> latencies;
  uint64_t errors = 0;
  uint64_t all_ok = 0;
  uint64_t all_errors = 0;
  std::string last_error;
  for (auto& s : stats) {
    std::lock_guard<std::mutex> lock(s->mutex);
    latencies.insert(latencies.end(), s->latencies_ns.begin(),
                     s->latencies_ns.end());
    errors += s->errors;
    all_ok += s->all_ok;
    all_errors += s->all_errors;
    if (!s->last_error.empty()) last_error = s->last_error;
  }

  auto percentile_us = [&latencies](double q) -> double {
    if (latencies.empty()) return 0;
    size_t rank = static_cast<size_t>(std::ceil(q * latencies.size()));
    size_t index = rank == 0 ? 0 : std::min(rank - 1, latencies.size() - 1);
    std::nth_element(latencies.begin(), latencies.begin() + index,
                     latencies.end());
    return latencies[index] / 1000.0;
  };

  uint64_t rpcs = latencies.size();
  double seconds = std::chrono::duration<double>(end - start).count();
  double cpu_us = CpuMicros(usage_end) - CpuMicros(usage_start);
  double p50 = percentile_us(0.50);
  double p99 = percentile_us(0.99);

  int exit_code = 0;
  if (rpcs == 0) {
    std::fprintf(stderr,
                 "echo_client: no RPC succeeded while measuring (%" PRIu64
                 " failed; %" PRIu64 " succeeded, %" PRIu64
                 " failed in all)%s%s\n",
                 errors, all_ok, all_errors,
                 last_error.empty() ? "" : "; last error: ",
                 last_error.c_str());
    exit_code = 1;
  } else {
    if (errors > 0)
      std::fprintf(stderr, "echo_client: %" PRIu64 " RPCs failed; last: %s\n",
                   errors, last_error.c_str());
    std::printf(
        "{\"client\":\"grpc-c++\",\"mode\":%s,\"size\":%ld,"
        "\"concurrency\":%ld,\"rpcs\":%" PRIu64
        ",\"seconds\":%.3f,\"rps\":%.1f,"
        "\"p50_us\":%.1f,\"p99_us\":%.1f,\"cpu_us_per_rpc\":%.2f,"
        "\"errors\":%" PRIu64 "}\n",
        JsonString(options.bidi ? "bidi" : "unary").c_str(), options.size,
        options.concurrency, rpcs, seconds, rpcs / seconds, p50, p99,
        cpu_us / static_cast<double>(rpcs), errors);
  }
  std::fflush(stdout);
  std::fflush(stderr);

  if (!drained) {
    std::fprintf(stderr,
                 "echo_client: %ld RPCs still in flight %d s after the end\n",
                 g_active_slots.load(),
                 static_cast<int>(kDrainTimeout.count()));
    std::fflush(stderr);
    std::_Exit(exit_code == 0 ? 2 : exit_code);
  }
  for (auto& cq : cqs) cq->Shutdown();
  for (auto& thread : threads) thread.join();
  return exit_code;
}
