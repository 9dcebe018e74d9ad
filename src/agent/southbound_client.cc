#include "agent/southbound_client.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

namespace canopy::agent {

SouthboundClient::SouthboundClient(Options options, OnView on_view)
    : options_(std::move(options)), on_view_(std::move(on_view)) {
  grpc::ChannelArguments args;
  // Notice a vanished server within seconds, also when the stream is idle.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  auto credentials =
      options_.credentials != nullptr ? options_.credentials : grpc::InsecureChannelCredentials();
  std::string_view list = options_.server;
  for (size_t start = 0; start <= list.size();) {
    size_t comma = std::min(list.find(',', start), list.size());
    std::string address(list.substr(start, comma - start));
    start = comma + 1;
    if (address.empty()) continue;
    Target t{.address = address,
             .channel = grpc::CreateCustomChannel(address, credentials, args),
             .stub = nullptr};
    t.stub = pb::Southbound::NewStub(t.channel);
    targets_.push_back(std::move(t));
  }
  if (targets_.empty()) {
    Target t{.address = options_.server,
             .channel = grpc::CreateCustomChannel(options_.server, credentials, args),
             .stub = nullptr};
    t.stub = pb::Southbound::NewStub(t.channel);
    targets_.push_back(std::move(t));
  }
}

std::string SouthboundClient::server() const { return target().address; }

SouthboundClient::~SouthboundClient() { stop(); }

void SouthboundClient::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void SouthboundClient::stop() {
  stopping_ = true;
  {
    MutexLock lock(mu_);
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void SouthboundClient::reportPort(const std::string& port_id, bool up) {
  MutexLock lock(mu_);
  port_state_[port_id] = up;
  auto* s = reports_.emplace_back().mutable_port_status();
  s->set_port_id(port_id);
  s->set_up(up);
  flushReports();
}

void SouthboundClient::resume(const HostView& view, uint64_t version) {
  view_ = view;
  applied_version_ = version;
}

void SouthboundClient::reportMemberHealth(const std::string& member_id, bool up) {
  MutexLock lock(mu_);
  member_health_[member_id] = up;
  auto* h = reports_.emplace_back().mutable_member_health();
  h->set_member_id(member_id);
  h->set_up(up);
  flushReports();
}

void SouthboundClient::flushReports() {
  if (stream_ == nullptr) return;
  while (!reports_.empty()) {
    if (!stream_->Write(reports_.front())) return;  // kept for the next stream
    reports_.pop_front();
  }
}

Result<pb::Instance> SouthboundClient::getInstance(const std::string& port_id,
                                                   std::chrono::milliseconds timeout) const {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  pb::InstanceRequest request;
  request.set_host_name(options_.hello.host_name());
  request.set_port_id(port_id);
  pb::Instance reply;
  grpc::Status status = target().stub->GetInstance(&context, request, &reply);
  if (status.ok()) return reply;
  Errc code = status.error_code() == grpc::StatusCode::NOT_FOUND           ? Errc::NotFound
              : status.error_code() == grpc::StatusCode::PERMISSION_DENIED ? Errc::PermissionDenied
                                                                           : Errc::Unavailable;
  return Error(code, "server: " + status.error_message());
}

void SouthboundClient::reportStats(const pb::Stats& stats) {
  MutexLock lock(mu_);
  if (stream_ == nullptr) return;
  pb::AgentMessage m;
  *m.mutable_stats() = stats;
  stream_->Write(m);  // a failed write ends the session; the next one resends
}

void SouthboundClient::run() {
  auto backoff = std::chrono::milliseconds(100);
  size_t failed_in_a_row = 0;  // replicas tried since one last served a view
  while (!stopping_.load()) {
    auto began = std::chrono::steady_clock::now();
    bool served = false;
    if (!session(served)) return;
    if (served) failed_in_a_row = 0;
    ++failed_in_a_row;
    if (std::chrono::steady_clock::now() - began > std::chrono::seconds(5)) {
      backoff = std::chrono::milliseconds(100);  // it was up for a while
    }
    // The next replica, at once while some of the list is untried; once
    // every one failed, with backoff.
    if (targets_.size() > 1) {
      size_t next = (current_.load() + 1) % targets_.size();
      current_.store(next);
      if (failed_in_a_row < targets_.size()) continue;
    }
    for (auto slept = std::chrono::milliseconds(0); slept < backoff && !stopping_.load();
         slept += std::chrono::milliseconds(20)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

bool SouthboundClient::session(bool& served) {
  grpc::ClientContext context;
  const Target& t = target();
  auto stream = t.stub->Connect(&context);
  {
    MutexLock lock(mu_);
    if (stopping_.load()) return false;
    context_ = &context;
  }
  pb::AgentMessage hello;
  *hello.mutable_hello() = options_.hello;
  hello.mutable_hello()->set_applied_version(applied_version_.load());
  if (applied_version_.load() != 0)
    *hello.mutable_hello()->mutable_held() = southbound::digest(view_);
  if (stream->Write(hello)) {
    {
      MutexLock lock(mu_);
      stream_ = stream.get();
      // The server learns every port's state again: reports made while
      // disconnected, and the current state of all.
      reports_.clear();
      for (const auto& [id, up] : port_state_) {
        auto* s = reports_.emplace_back().mutable_port_status();
        s->set_port_id(id);
        s->set_up(up);
      }
      for (const auto& [id, up] : member_health_) {
        auto* h = reports_.emplace_back().mutable_member_health();
        h->set_member_id(id);
        h->set_up(up);
      }
      flushReports();
    }
    pb::ServerMessage m;
    while (stream->Read(&m)) {
      if (!m.has_view()) continue;
      if (!connected_.exchange(true)) {
        spdlog::info("southbound: connected to {} (resumed from version {})", t.address,
                     applied_version_.load());
      }
      served = true;
      const pb::View& v = m.view();
      Result<void> r = ok();
      if (v.base_version() != 0 && v.base_version() != applied_version_.load()) {
        r = Error(Errc::InvalidArgument, "changes since version " +
                                             std::to_string(v.base_version()) + ", but version " +
                                             std::to_string(applied_version_.load()) + " is held");
      } else {
        r = southbound::apply(view_, v);  // in place; a bad message changes nothing
        if (r) {
          r = on_view_(view_, v.version());
          // Refused after all: what is held is no version; a snapshot follows.
          if (!r) applied_version_ = 0;
        }
      }
      pb::AgentMessage ack;
      ack.mutable_ack()->set_version(v.version());
      ack.mutable_ack()->set_accepted(static_cast<bool>(r));
      if (r) {
        applied_version_ = v.version();
      } else {
        ack.mutable_ack()->set_reason(r.error().message());
        spdlog::warn("southbound: version {} refused: {}", v.version(), r.error().message());
      }
      MutexLock lock(mu_);
      if (!stream_->Write(ack)) break;
    }
  }
  {
    MutexLock lock(mu_);
    context_ = nullptr;
    stream_ = nullptr;
  }
  if (connected_.exchange(false)) spdlog::warn("southbound: lost {}", t.address);
  context.TryCancel();
  stream->Finish();
  return !stopping_.load();
}

}  // namespace canopy::agent
