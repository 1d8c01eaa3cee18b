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

// echo_server: a gRPC C++ echo peer that needs no generated code.
//
// Every method echoes: each request message is written back as a response
// message, and the call ends with OK when the client half-closes. A call whose
// metadata has `echo-status: <code>` ends at once with that code and the
// message `echo-message` (default "requested"). grpc.health.v1's methods are
// UNIMPLEMENTED, as on a server without a health service (an echoed Watch
// would look like a health stream that ends). See README.md.

#include <grpc/grpc.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kMaxMessageSize = 64 * 1024 * 1024;

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "echo_server: %s\n", message.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  // No static destructors: gRPC threads may be running.
  std::_Exit(1);
}

void Usage(FILE* out) {
  std::fprintf(
      out,
      "usage: echo_server [--port N] [--host ADDR] [--threads N]\n"
      "                   [--api callback|async]\n"
      "                   [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]\n"
      "  --port N        port to listen on, 0 = ephemeral (default 0)\n"
      "  --host ADDR     address to bind (default 127.0.0.1)\n"
      "  --threads N     completion queue threads for --api async\n"
      "                  (default: number of cores)\n"
      "  --api KIND      callback: CallbackGenericService (default);\n"
      "                  async: AsyncGenericService, one CQ per thread\n"
      "  --tls-cert/--tls-key  serve TLS with this certificate chain and key\n"
      "  --tls-ca FILE   mutual TLS: require a client certificate signed by\n"
      "                  this CA\n"
      "Prints `listening on PORT` once listening; stops on SIGTERM/SIGINT.\n");
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

std::string ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(std::string("cannot read ") + what + " '" + path + "'");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) Fail(std::string("cannot read ") + what + " '" + path + "'");
  return contents.str();
}

struct Options {
  long port = 0;
  std::string host = "127.0.0.1";
  long threads = 0;  // 0: number of cores
  bool async_api = false;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
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
    if (arg == "--port") {
      std::string v = next();
      if (!ParseLong(v, 0, 65535, &options.port))
        Fail("--port must be an integer in 0...65535, got '" + v + "'");
    } else if (arg == "--host") {
      options.host = next();
      if (options.host.empty()) Fail("--host must not be empty");
    } else if (arg == "--threads") {
      std::string v = next();
      if (!ParseLong(v, 1, 256, &options.threads))
        Fail("--threads must be an integer in 1...256, got '" + v + "'");
    } else if (arg == "--api") {
      std::string v = next();
      if (v == "callback") {
        options.async_api = false;
      } else if (v == "async") {
        options.async_api = true;
      } else {
        Fail("--api must be callback or async, got '" + v + "'");
      }
    } else if (arg == "--tls-cert") {
      options.tls_cert = next();
    } else if (arg == "--tls-key") {
      options.tls_key = next();
    } else if (arg == "--tls-ca") {
      options.tls_ca = next();
    } else {
      std::fprintf(stderr, "echo_server: unknown option '%s'\n", argv[i]);
      Usage(stderr);
      std::exit(1);
    }
  }
  if (options.tls_cert.empty() != options.tls_key.empty())
    Fail("--tls-cert and --tls-key go together");
  if (!options.tls_ca.empty() && options.tls_cert.empty())
    Fail("--tls-ca needs --tls-cert and --tls-key");
  if (options.threads == 0) {
    unsigned cores = std::thread::hardware_concurrency();
    options.threads = cores == 0 ? 1 : static_cast<long>(cores);
  }
  return options;
}

// Whether the client asked for a status with `echo-status: <code>`; if so
// sets *status (INVALID_ARGUMENT when the value is not a code in 0...16).
bool RequestedStatus(
    const std::string& method,
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
    grpc::Status* status) {
  if (method.rfind("/grpc.health.v1.Health/", 0) == 0) {
    *status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                           "this echo server has no health service");
    return true;
  }
  auto it = metadata.find("echo-status");
  if (it == metadata.end()) return false;
  std::string text(it->second.data(), it->second.size());
  long code = 0;
  if (!ParseLong(text, 0, 16, &code)) {
    *status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                           "echo-status must be a status code in 0...16");
  } else {
    auto message = metadata.find("echo-message");
    *status = grpc::Status(
        static_cast<grpc::StatusCode>(code),
        message == metadata.end()
            ? std::string("requested")
            : std::string(message->second.data(), message->second.size()));
  }
  return true;
}

// ---------------------------------------------------------------------------
// Callback API

class EchoReactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit EchoReactor(grpc::GenericCallbackServerContext* context) {
    grpc::Status status;
    if (RequestedStatus(context->method(), context->client_metadata(),
                        &status)) {
      Finish(status);
      return;
    }
    StartRead(&buffer_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // half-close (or cancellation)
      Finish(grpc::Status::OK);
      return;
    }
    StartWrite(&buffer_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::UNKNOWN, "write failed"));
      return;
    }
    StartRead(&buffer_);
  }

  void OnDone() override { delete this; }

 private:
  grpc::ByteBuffer buffer_;
};

class EchoCallbackService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    return new EchoReactor(context);
  }
};

// ---------------------------------------------------------------------------
// Async (completion queue) API: one completion queue per thread.

class AsyncCall {
 public:
  AsyncCall(grpc::AsyncGenericService* service,
            grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), stream_(&context_) {
    service_->RequestCall(&context_, &stream_, cq_, cq_, this);
  }

  // Called with the completion of the one operation in flight.
  void Proceed(bool ok) {
    switch (state_) {
      case State::kRequested: {
        if (!ok) {  // server shutting down
          delete this;
          return;
        }
        new AsyncCall(service_, cq_);  // serve the next call
        grpc::Status status;
        if (RequestedStatus(context_.method(), context_.client_metadata(),
                            &status)) {
          Finish(status);
          return;
        }
        state_ = State::kReading;
        stream_.Read(&buffer_, this);
        return;
      }
      case State::kReading:
        if (!ok) {  // half-close (or cancellation)
          Finish(grpc::Status::OK);
          return;
        }
        state_ = State::kWriting;
        stream_.Write(buffer_, this);
        return;
      case State::kWriting:
        if (!ok) {
          Finish(grpc::Status(grpc::StatusCode::UNKNOWN, "write failed"));
          return;
        }
        state_ = State::kReading;
        stream_.Read(&buffer_, this);
        return;
      case State::kFinishing:
        delete this;
        return;
    }
  }

 private:
  enum class State { kRequested, kReading, kWriting, kFinishing };

  void Finish(const grpc::Status& status) {
    state_ = State::kFinishing;
    stream_.Finish(status, this);
  }

  grpc::AsyncGenericService* service_;
  grpc::ServerCompletionQueue* cq_;
  grpc::GenericServerContext context_;
  grpc::GenericServerAsyncReaderWriter stream_;
  grpc::ByteBuffer buffer_;
  State state_ = State::kRequested;
};

// Guards a thread's tag processing so that nothing starts an operation on a
// completion queue after it has been shut down.
struct ShutdownGate {
  std::mutex mutex;
  bool shut_down = false;
};

void ServeQueue(grpc::ServerCompletionQueue* cq, ShutdownGate* gate) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) {
    std::lock_guard<std::mutex> lock(gate->mutex);
    // After shutdown, pending calls are dropped (leaked): the process exits.
    if (!gate->shut_down) static_cast<AsyncCall*>(tag)->Proceed(ok);
  }
}

std::string HostPort(const std::string& host, long port) {
  bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

int main(int argc, char** argv) {
  Options options = ParseOptions(argc, argv);

  // SIGTERM/SIGINT are taken by sigwait in main; block them before any gRPC
  // thread starts so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (options.tls_cert.empty()) {
    credentials = grpc::InsecureServerCredentials();
  } else {
    grpc::SslServerCredentialsOptions ssl(
        options.tls_ca.empty()
            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    if (!options.tls_ca.empty())
      ssl.pem_root_certs = ReadFile(options.tls_ca, "--tls-ca");
    ssl.pem_key_cert_pairs.push_back(
        {ReadFile(options.tls_key, "--tls-key"),
         ReadFile(options.tls_cert, "--tls-cert")});
    credentials = grpc::SslServerCredentials(ssl);
  }

  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(HostPort(options.host, options.port), credentials,
                           &selected_port);
  builder.SetMaxReceiveMessageSize(kMaxMessageSize);
  builder.SetMaxSendMessageSize(kMaxMessageSize);
  // A port in use is an error, not a port shared with another process.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);

  EchoCallbackService callback_service;
  grpc::AsyncGenericService async_service;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  if (options.async_api) {
    builder.RegisterAsyncGenericService(&async_service);
    for (long i = 0; i < options.threads; ++i)
      cqs.push_back(builder.AddCompletionQueue());
  } else {
    builder.RegisterCallbackGenericService(&callback_service);
  }

  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || selected_port == 0)
    Fail("cannot listen on " + HostPort(options.host, options.port));

  std::vector<std::unique_ptr<ShutdownGate>> gates;
  std::vector<std::thread> threads;
  if (options.async_api) {
    constexpr int kRequestsPerQueue = 32;
    for (auto& cq : cqs) {
      for (int i = 0; i < kRequestsPerQueue; ++i)
        new AsyncCall(&async_service, cq.get());
      gates.push_back(std::make_unique<ShutdownGate>());
      threads.emplace_back(ServeQueue, cq.get(), gates.back().get());
    }
  }

  std::printf("listening on %d\n", selected_port);
  std::fflush(stdout);

  int signal_number = 0;
  while (sigwait(&signals, &signal_number) != 0) {
  }

  // Whatever happens below, the process is gone 1 s after the signal.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(950));
    std::fprintf(stderr, "echo_server: shutdown took too long, exiting\n");
    std::fflush(stderr);
    _exit(0);
  }).detach();

  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(500));
  for (auto& gate : gates) {
    std::lock_guard<std::mutex> lock(gate->mutex);
    gate->shut_down = true;
  }
  for (auto& cq : cqs) cq->Shutdown();
  for (auto& thread : threads) thread.join();
  std::fflush(stdout);
  _exit(0);  // skip static destructors while gRPC threads may still run
}
