#include "store/etcd_store.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "base/mutex.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace canopy::store {
namespace {

namespace epb = ::etcdserverpb;
namespace mvcc = ::mvccpb;
using Clock = std::chrono::steady_clock;

// One try of a call may take this long before the next member is asked.
constexpr auto kAttemptTimeout = std::chrono::seconds(5);

// gRPC takes deadlines on the system clock.
std::chrono::system_clock::time_point wall(Clock::time_point t) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(t - Clock::now());
}

bool contains(const std::string& text, std::string_view what) {
  return text.find(what) != std::string::npos;
}

// What an etcd error means to a caller of the store.
Error toError(const grpc::Status& st, std::string_view what) {
  const std::string& m = st.error_message();
  std::string text = "etcd: " + std::string(what) + ": " + m;
  if (contains(m, "required revision has been compacted")) return Error(Errc::Compacted, text);
  if (contains(m, "required revision is a future revision")) {
    return Error(Errc::InvalidArgument, text);
  }
  if (contains(m, "requested lease not found")) return Error(Errc::NotFound, text);
  if (contains(m, "too many operations in txn request")) {
    return Error(Errc::InvalidArgument, text + " (raise etcd's --max-txn-ops)");
  }
  if (contains(m, "request is too large")) {
    return Error(Errc::InvalidArgument, text + " (raise etcd's --max-request-bytes)");
  }
  if (contains(m, "database space exceeded")) {
    return Error(
        Errc::Unavailable,
        text + " (etcd's quota is full: compact and defragment it, then disarm the alarm)");
  }
  switch (st.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return Error(Errc::InvalidArgument, text);
    case grpc::StatusCode::NOT_FOUND:
      return Error(Errc::NotFound, text);
    case grpc::StatusCode::PERMISSION_DENIED:
      return Error(Errc::PermissionDenied, text);
    case grpc::StatusCode::UNAUTHENTICATED:
      return Error(Errc::Unauthenticated, text);
    case grpc::StatusCode::DATA_LOSS:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNIMPLEMENTED:
      return Error(Errc::Internal, text);
    default:
      return Error(Errc::Unavailable, text);
  }
}

// An error etcd returns before it does anything: the call may be sent again
// whatever it does.
bool notApplied(const grpc::Status& st) {
  const std::string& m = st.error_message();
  return (st.error_code() == grpc::StatusCode::UNAVAILABLE &&
          (contains(m, "etcdserver: no leader") || contains(m, "etcdserver: not capable"))) ||
         (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
          contains(m, "etcdserver: too many requests"));
}

// An error after which another member may answer (the member is gone, has no
// leader, timed out).
bool transient(const grpc::Status& st) {
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::ABORTED:
      return true;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return notApplied(st);
    default:
      return false;
  }
}

struct Endpoint {
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<epb::KV::Stub> kv;
  std::unique_ptr<epb::Watch::Stub> watch;
  std::unique_ptr<epb::Lease::Stub> lease;
};

// The members and which one calls go to; shared by the store and its watches.
class Connection {
 public:
  explicit Connection(const EtcdOptions& options) : options_(options) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // the whole model in one range
    args.SetMaxSendMessageSize(-1);
    // etcd's default --grpc-keepalive-min-time is 5 s: ping no more often.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 6000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    // A member that comes back is tried again within a second, not gRPC's
    // default of up to two minutes.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    for (const auto& address : options.endpoints) {
      Endpoint e;
      e.address = address;
      e.channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
      e.kv = epb::KV::NewStub(e.channel);
      e.watch = epb::Watch::NewStub(e.channel);
      e.lease = epb::Lease::NewStub(e.channel);
      endpoints_.push_back(std::move(e));
    }
  }

  const EtcdOptions& options() const { return options_; }
  std::string members() const {
    std::string out;
    for (const auto& e : endpoints_) out += (out.empty() ? "" : ",") + e.address;
    return out;
  }

  // A member that accepts a connection within the connect timeout, starting
  // from the current one; nullptr if none did before `deadline`.
  Endpoint* connect(Clock::time_point deadline, size_t& index) {
    for (size_t tried = 0; tried < endpoints_.size() && Clock::now() < deadline &&
                           !closed_.load(std::memory_order_relaxed);
         ++tried) {
      index = current_.load(std::memory_order_relaxed) % endpoints_.size();
      Endpoint& e = endpoints_[index];
      auto by = std::min(deadline, Clock::now() + options_.connect_timeout);
      if (e.channel->WaitForConnected(wall(by))) return &e;
      moveOn(index);
    }
    return nullptr;
  }

  // Calls go to the member after `index` from now on (unless another caller
  // moved already).
  void moveOn(size_t index) {
    size_t expected = index;
    if (current_.compare_exchange_strong(expected, (index + 1) % endpoints_.size())) {
      spdlog::debug("etcd: moving from {} to {}", endpoints_[index].address,
                    endpoints_[(index + 1) % endpoints_.size()].address);
    }
  }

  // Runs `call(endpoint, context)` on a reachable member. A call that fails
  // before etcd did anything is tried again (on the next member); so is any
  // failed call when `idempotent`. Otherwise the error is returned as it is.
  template <typename Call>
  grpc::Status run(bool idempotent, Call&& call) {
    auto deadline = Clock::now() + options_.request_timeout;
    grpc::Status last(grpc::StatusCode::UNAVAILABLE, "no etcd member answers (" + members() + ")");
    for (int attempt = 0; Clock::now() < deadline && !closed_.load(); ++attempt) {
      size_t index = 0;
      Endpoint* e = connect(deadline, index);
      if (e == nullptr) break;
      grpc::ClientContext context;
      context.set_deadline(wall(std::min(deadline, Clock::now() + kAttemptTimeout)));
      grpc::Status st = call(*e, context);
      if (st.ok()) return st;
      bool again = notApplied(st) || (idempotent && transient(st));
      if (!again) {
        if (transient(st)) {
          return {st.error_code(), st.error_message() + " (member " + e->address +
                                       "; the write may or may not have been applied)"};
        }
        return st;
      }
      last = st;
      moveOn(index);
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50 * (attempt + 1), 500)));
    }
    return last;
  }

  void noteRevision(int64_t revision) {
    int64_t seen = revision_.load(std::memory_order_relaxed);
    while (revision > seen && !revision_.compare_exchange_weak(seen, revision)) {
    }
  }
  int64_t lastRevision() const { return revision_.load(std::memory_order_relaxed); }
  void noteCompacted(int64_t revision) {
    int64_t seen = compacted_.load(std::memory_order_relaxed);
    while (revision > seen && !compacted_.compare_exchange_weak(seen, revision)) {
    }
  }
  int64_t lastCompacted() const { return compacted_.load(std::memory_order_relaxed); }

  // Ends the store: calls stop trying and every watch reports Unavailable.
  void close() {
    closed_.store(true);
    MutexLock lock(watches_mu_);
    for (Watch* w : watches_) w->cancel();
  }
  bool closed() const { return closed_.load(); }
  // A watch registers while it lives, so that close() ends it.
  bool enlist(Watch* w) {
    MutexLock lock(watches_mu_);
    if (closed_.load()) return false;
    watches_.insert(w);
    return true;
  }
  void leave(Watch* w) {
    MutexLock lock(watches_mu_);
    watches_.erase(w);
  }

 private:
  EtcdOptions options_;
  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> current_{0};
  std::atomic<int64_t> revision_{0};
  std::atomic<int64_t> compacted_{0};
  std::atomic<bool> closed_{false};
  Mutex watches_mu_;
  std::set<Watch*> watches_ CANOPY_GUARDED_BY(watches_mu_);
};

KeyValue fromPb(const mvcc::KeyValue& kv) {
  return KeyValue{kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.version()};
}

// etcd's range for a prefix: [prefix, end), "\0" standing for "no end" and,
// as a key, for the very first key.
void setRange(std::string_view prefix, std::string* key, std::string* range_end) {
  *key = prefix.empty() ? std::string(1, '\0') : std::string(prefix);
  std::string end = prefixEnd(prefix);
  *range_end = end.empty() ? std::string(1, '\0') : end;
}

void toPb(const Op& op, epb::RequestOp* out) {
  switch (op.type) {
    case Op::Type::Put: {
      auto* put = out->mutable_request_put();
      put->set_key(op.key);
      put->set_value(op.value);
      put->set_lease(op.lease);
      break;
    }
    case Op::Type::Delete:
      out->mutable_request_delete_range()->set_key(op.key);
      break;
    case Op::Type::DeletePrefix: {
      auto* del = out->mutable_request_delete_range();
      setRange(op.key, del->mutable_key(), del->mutable_range_end());
      break;
    }
    case Op::Type::Get:
      out->mutable_request_range()->set_key(op.key);
      break;
    case Op::Type::GetPrefix: {
      auto* range = out->mutable_request_range();
      setRange(op.key, range->mutable_key(), range->mutable_range_end());
      break;
    }
  }
}

void toPb(const Compare& c, epb::Compare* out) {
  out->set_key(c.key);
  switch (c.op) {
    case Compare::Op::Equal:
      out->set_result(epb::Compare::EQUAL);
      break;
    case Compare::Op::NotEqual:
      out->set_result(epb::Compare::NOT_EQUAL);
      break;
    case Compare::Op::Less:
      out->set_result(epb::Compare::LESS);
      break;
    case Compare::Op::Greater:
      out->set_result(epb::Compare::GREATER);
      break;
  }
  switch (c.target) {
    case Compare::Target::Version:
      out->set_target(epb::Compare::VERSION);
      out->set_version(c.number);
      break;
    case Compare::Target::CreateRevision:
      out->set_target(epb::Compare::CREATE);
      out->set_create_revision(c.number);
      break;
    case Compare::Target::ModRevision:
      out->set_target(epb::Compare::MOD);
      out->set_mod_revision(c.number);
      break;
    case Compare::Target::Value:
      out->set_target(epb::Compare::VALUE);
      out->set_value(c.value);
      break;
  }
}

bool writes(std::span<const Op> ops) {
  return std::any_of(ops.begin(), ops.end(), [](const Op& op) {
    return op.type == Op::Type::Put || op.type == Op::Type::Delete ||
           op.type == Op::Type::DeletePrefix;
  });
}

Event fromPb(const mvcc::Event& e) {
  Event out;
  if (e.type() == mvcc::Event::DELETE) {
    out.type = Event::Type::Delete;
    out.kv = KeyValue{e.kv().key(), {}, 0, e.kv().mod_revision(), 0};
  } else {
    out.type = Event::Type::Put;
    out.kv = fromPb(e.kv());
  }
  return out;
}

using WatchStream = grpc::ClientReaderWriter<epb::WatchRequest, epb::WatchResponse>;

// A watch on etcd: a reader thread keeps one stream open (opening another on
// the next member from where it stopped when it breaks) and queues what
// arrives; next() takes it from the queue.
class EtcdWatch final : public Watch {
 public:
  EtcdWatch(std::shared_ptr<Connection> connection, std::string prefix)
      : connection_(std::move(connection)), prefix_(std::move(prefix)) {}

  ~EtcdWatch() override {
    connection_->leave(this);
    cancel();
    if (reader_.joinable()) reader_.join();
  }

  // Opens the first stream (Compacted if `from` is gone) and starts reading.
  Result<void> start(Revision from) {
    if (!connection_->enlist(this)) return Error(Errc::Unavailable, "store is closed");
    {
      MutexLock lock(mu_);
      received_next_ = from;
    }
    if (auto r = open(); !r) return r;
    {
      MutexLock lock(mu_);
      delivered_next_ = received_next_;
    }
    reader_ = std::thread([this] { read(); });
    return ok();
  }

  Result<std::vector<Event>> next(std::chrono::milliseconds timeout) override {
    auto deadline = Clock::now() + timeout;
    MutexLock lock(mu_);
    while (queue_.empty() && !error_ && !cancelled_) {
      if (cv_.wait_until(mu_, deadline) == std::cv_status::timeout) break;
    }
    if (cancelled_) return Error(Errc::Unavailable, "watch cancelled");
    std::vector<Event> events;
    while (!queue_.empty()) {
      Batch& b = queue_.front();
      std::move(b.events.begin(), b.events.end(), std::back_inserter(events));
      delivered_next_ = std::max(delivered_next_, b.next);
      queue_.pop_front();
    }
    if (events.empty() && error_) return *error_;
    return events;
  }

  Revision nextRevision() const override {
    MutexLock lock(mu_);
    return delivered_next_;
  }

  void cancel() override {
    MutexLock lock(mu_);
    cancelled_ = true;
    if (context_) context_->TryCancel();
    cv_.notify_all();
  }

 private:
  struct Batch {
    std::vector<Event> events;
    Revision next = 0;  // the first revision after this batch
  };

  // Opens a stream from received_next_ on a member that answers, within the
  // request timeout.
  Result<void> open() {
    Connection& c = *connection_;
    auto deadline = Clock::now() + c.options().request_timeout;
    std::string last = "no etcd member answers (" + c.members() + ")";
    while (Clock::now() < deadline) {
      Revision from = 0;
      {
        MutexLock lock(mu_);
        if (cancelled_) return Error(Errc::Unavailable, "watch cancelled");
        from = received_next_;
      }
      size_t index = 0;
      Endpoint* e = c.connect(deadline, index);
      if (e == nullptr) break;
      auto context = std::make_unique<grpc::ClientContext>();
      std::unique_ptr<WatchStream> stream = e->watch->Watch(context.get());
      epb::WatchRequest request;
      auto* create = request.mutable_create_request();
      setRange(prefix_, create->mutable_key(), create->mutable_range_end());
      create->set_start_revision(from);
      create->set_progress_notify(true);
      epb::WatchResponse response;
      if (stream->Write(request) && stream->Read(&response)) {
        if (response.canceled()) {
          if (response.compact_revision() > 0) {
            c.noteCompacted(response.compact_revision());
            return compacted(from, response.compact_revision());
          }
          return Error(Errc::Unavailable,
                       "etcd refused a watch on " + prefix_ + ": " + response.cancel_reason());
        }
        c.noteRevision(response.header().revision());
        // etcd creates a watch from a compacted revision and cancels it
        // right after: a read at that revision tells at once.
        if (from > 0 && from <= response.header().revision()) {
          epb::RangeRequest probe;
          probe.set_key(std::string(EtcdStore::kLayoutKey));
          probe.set_revision(from);
          probe.set_count_only(true);
          epb::RangeResponse probed;
          grpc::ClientContext probe_context;
          probe_context.set_deadline(wall(Clock::now() + kAttemptTimeout));
          grpc::Status st = e->kv->Range(&probe_context, probe, &probed);
          if (!st.ok() && contains(st.error_message(), "required revision has been compacted")) {
            context->TryCancel();
            (void)stream->Finish();
            // How far: the cancel that follows says.
            return compacted(from, 0);
          }
        }
        MutexLock lock(mu_);
        if (cancelled_) return Error(Errc::Unavailable, "watch cancelled");
        if (received_next_ <= 0) received_next_ = response.header().revision() + 1;
        context_ = std::move(context);
        stream_ = std::move(stream);
        return ok();
      }
      context->TryCancel();
      grpc::Status st = stream->Finish();
      last = st.error_message();
      c.moveOn(index);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return Error(Errc::Unavailable, "etcd: cannot watch " + prefix_ + ": " + last);
  }

  Error compacted(Revision from, Revision compact_revision) const {
    std::string before =
        compact_revision > 0 ? " before revision " + std::to_string(compact_revision) : "";
    return Error(Errc::Compacted, "watch needs revision " + std::to_string(from) +
                                      " but etcd's history" + before +
                                      " was compacted; read the current state and resume");
  }

  void push(Batch batch) {
    MutexLock lock(mu_);
    queue_.push_back(std::move(batch));
    cv_.notify_all();
  }

  void fail(Error error) {
    MutexLock lock(mu_);
    error_ = std::move(error);
    cv_.notify_all();
  }

  void read() {
    epb::WatchResponse response;
    for (;;) {
      WatchStream* stream = nullptr;
      {
        MutexLock lock(mu_);
        if (cancelled_) return;
        stream = stream_.get();
      }
      if (stream->Read(&response)) {
        connection_->noteRevision(response.header().revision());
        if (response.canceled()) {
          Revision from = 0;
          {
            MutexLock lock(mu_);
            from = received_next_;
          }
          if (response.compact_revision() > 0) {
            connection_->noteCompacted(response.compact_revision());
            return fail(compacted(from, response.compact_revision()));
          }
          spdlog::warn("etcd: watch on {} cancelled by etcd ({}); resuming from revision {}",
                       prefix_, response.cancel_reason(), from);
          if (!reopen()) return;
          continue;
        }
        Batch batch;
        for (const auto& e : response.events()) batch.events.push_back(fromPb(e));
        MutexLock lock(mu_);
        if (!batch.events.empty()) {
          received_next_ = batch.events.back().kv.mod_revision + 1;
        } else if (response.header().revision() + 1 > received_next_) {
          received_next_ = response.header().revision() + 1;  // progress: nothing before it
        } else {
          continue;
        }
        batch.next = received_next_;
        queue_.push_back(std::move(batch));
        cv_.notify_all();
        continue;
      }
      {
        MutexLock lock(mu_);
        if (cancelled_) return;
      }
      grpc::Status st = stream->Finish();
      Revision from = 0;
      {
        MutexLock lock(mu_);
        from = received_next_;
      }
      spdlog::warn("etcd: watch on {} broke ({}); resuming from revision {}", prefix_,
                   st.error_message(), from);
      if (!reopen()) return;
    }
  }

  // Opens a new stream where the last left off, as long as it takes; false
  // when the watch ends (cancelled, or compacted: next() reports it).
  bool reopen() {
    for (int attempt = 0;; ++attempt) {
      auto r = open();
      if (r) {
        MutexLock lock(mu_);
        spdlog::info("etcd: watch on {} resumed from revision {}", prefix_, received_next_);
        return true;
      }
      if (r.error().code() == Errc::Compacted) {
        fail(r.error());
        return false;
      }
      {
        MutexLock lock(mu_);
        if (cancelled_) return false;
        cv_.wait_for(mu_, std::chrono::milliseconds(std::min(200 * (attempt + 1), 2000)));
        if (cancelled_) return false;
      }
      spdlog::warn("etcd: {}", r.error().message());
    }
  }

  std::shared_ptr<Connection> connection_;
  const std::string prefix_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<Batch> queue_ CANOPY_GUARDED_BY(mu_);
  std::optional<Error> error_ CANOPY_GUARDED_BY(mu_);
  bool cancelled_ CANOPY_GUARDED_BY(mu_) = false;
  Revision received_next_ CANOPY_GUARDED_BY(mu_) = 0;   // where a new stream starts
  Revision delivered_next_ CANOPY_GUARDED_BY(mu_) = 0;  // after what next() returned
  // The live stream; replaced only by the reader thread (or start()).
  std::unique_ptr<grpc::ClientContext> context_ CANOPY_GUARDED_BY(mu_);
  std::unique_ptr<WatchStream> stream_ CANOPY_GUARDED_BY(mu_);
  std::thread reader_;
};

class EtcdStoreImpl final : public Store {
 public:
  explicit EtcdStoreImpl(std::shared_ptr<Connection> connection)
      : connection_(std::move(connection)) {}
  ~EtcdStoreImpl() override { connection_->close(); }

  Result<TxnResponse> txn(std::span<const Compare> compares, std::span<const Op> success,
                          std::span<const Op> failure) override {
    if (auto v = validateBranch(success); !v) return std::move(v).error();
    if (auto v = validateBranch(failure); !v) return std::move(v).error();
    epb::TxnRequest request;
    for (const Compare& c : compares) {
      if (c.key.empty()) return Error(Errc::InvalidArgument, "empty key in compare");
      toPb(c, request.add_compare());
    }
    for (const Op& op : success) toPb(op, request.add_success());
    for (const Op& op : failure) toPb(op, request.add_failure());
    epb::TxnResponse response;
    bool idempotent = !writes(success) && !writes(failure);
    grpc::Status st = connection_->run(idempotent, [&](Endpoint& e, grpc::ClientContext& context) {
      return e.kv->Txn(&context, request, &response);
    });
    if (!st.ok()) return toError(st, "transaction");
    connection_->noteRevision(response.header().revision());
    TxnResponse out;
    out.succeeded = response.succeeded();
    out.revision = response.header().revision();
    for (const auto& r : response.responses()) {
      OpResult result;
      if (r.has_response_range()) {
        for (const auto& kv : r.response_range().kvs()) result.kvs.push_back(fromPb(kv));
      } else if (r.has_response_delete_range()) {
        result.deleted = r.response_delete_range().deleted();
      }
      out.results.push_back(std::move(result));
    }
    return out;
  }

  Result<RangeResponse> range(std::string_view prefix) override {
    epb::RangeRequest request;
    setRange(prefix, request.mutable_key(), request.mutable_range_end());
    epb::RangeResponse response;
    grpc::Status st = connection_->run(true, [&](Endpoint& e, grpc::ClientContext& context) {
      return e.kv->Range(&context, request, &response);
    });
    if (!st.ok()) return toError(st, "range " + std::string(prefix));
    connection_->noteRevision(response.header().revision());
    RangeResponse out;
    out.revision = response.header().revision();
    out.kvs.reserve(static_cast<size_t>(response.kvs_size()));
    for (const auto& kv : response.kvs()) out.kvs.push_back(fromPb(kv));
    return out;
  }

  // The cluster's revision now (one count-only read); the last seen when no
  // member answers.
  Revision revision() const override {
    epb::RangeRequest request;
    request.set_key(std::string(EtcdStore::kLayoutKey));
    request.set_count_only(true);
    epb::RangeResponse response;
    grpc::Status st = connection_->run(true, [&](Endpoint& e, grpc::ClientContext& context) {
      return e.kv->Range(&context, request, &response);
    });
    if (st.ok()) connection_->noteRevision(response.header().revision());
    return connection_->lastRevision();
  }

  // etcd says what it compacted only when asked for older history: a watch
  // from revision 1 of one key tells.
  Revision compactedRevision() const override {
    auto deadline = Clock::now() + connection_->options().request_timeout;
    size_t index = 0;
    Endpoint* e = connection_->connect(deadline, index);
    if (e == nullptr) return connection_->lastCompacted();
    grpc::ClientContext context;
    context.set_deadline(wall(Clock::now() + kAttemptTimeout));
    auto stream = e->watch->Watch(&context);
    epb::WatchRequest request;
    request.mutable_create_request()->set_key(std::string(EtcdStore::kLayoutKey));
    request.mutable_create_request()->set_start_revision(1);
    // Created, then either the key's history (not compacted) or a cancel
    // that names the compacted revision.
    epb::WatchResponse response;
    if (stream->Write(request)) {
      for (int i = 0; i < 3 && stream->Read(&response); ++i) {
        if (response.canceled()) {
          if (response.compact_revision() > 0) {
            connection_->noteCompacted(response.compact_revision());
          }
          break;
        }
        if (response.events_size() > 0) break;
      }
    }
    context.TryCancel();
    (void)stream->Finish();
    return connection_->lastCompacted();
  }

  Result<void> compact(Revision revision) override {
    epb::CompactionRequest request;
    request.set_revision(revision);
    epb::CompactionResponse response;
    grpc::Status st = connection_->run(true, [&](Endpoint& e, grpc::ClientContext& context) {
      return e.kv->Compact(&context, request, &response);
    });
    if (!st.ok()) return toError(st, "compact to revision " + std::to_string(revision));
    connection_->noteCompacted(revision);
    return ok();
  }

  Result<std::unique_ptr<Watch>> watch(std::string prefix, Revision from) override {
    auto w = std::make_unique<EtcdWatch>(connection_, std::move(prefix));
    if (auto r = w->start(from); !r) return std::move(r).error();
    return std::unique_ptr<Watch>(std::move(w));
  }

  Result<LeaseId> grantLease(std::chrono::seconds ttl) override {
    if (ttl.count() <= 0) return Error(Errc::InvalidArgument, "a lease needs a positive TTL");
    epb::LeaseGrantRequest request;
    request.set_ttl(ttl.count());
    epb::LeaseGrantResponse response;
    // A lease granted twice by a retry only expires unused.
    grpc::Status st = connection_->run(true, [&](Endpoint& e, grpc::ClientContext& context) {
      return e.lease->LeaseGrant(&context, request, &response);
    });
    if (!st.ok()) return toError(st, "granting a lease");
    if (!response.error().empty()) {
      return Error(Errc::Unavailable, "etcd: granting a lease: " + response.error());
    }
    return response.id();
  }

  Result<void> keepAlive(LeaseId lease) override {
    epb::LeaseKeepAliveResponse response;
    grpc::Status st = connection_->run(true, [&](Endpoint& e, grpc::ClientContext& context) {
      auto stream = e.lease->LeaseKeepAlive(&context);
      epb::LeaseKeepAliveRequest request;
      request.set_id(lease);
      if (!stream->Write(request) || !stream->Read(&response)) {
        context.TryCancel();
        grpc::Status broken = stream->Finish();
        return broken.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "keep-alive stream ended")
                           : broken;
      }
      stream->WritesDone();
      context.TryCancel();
      (void)stream->Finish();
      return grpc::Status::OK;
    });
    if (!st.ok()) return toError(st, "keeping lease " + std::to_string(lease) + " alive");
    if (response.ttl() <= 0) {
      return Error(Errc::NotFound, "lease " + std::to_string(lease) + " has expired");
    }
    return ok();
  }

  Result<void> revokeLease(LeaseId lease) override {
    epb::LeaseRevokeRequest request;
    request.set_id(lease);
    epb::LeaseRevokeResponse response;
    grpc::Status st = connection_->run(true, [&](Endpoint& e, grpc::ClientContext& context) {
      return e.lease->LeaseRevoke(&context, request, &response);
    });
    if (!st.ok()) {
      if (st.error_code() == grpc::StatusCode::NOT_FOUND) return ok();
      return toError(st, "revoking lease " + std::to_string(lease));
    }
    connection_->noteRevision(response.header().revision());
    return ok();
  }

 private:
  std::shared_ptr<Connection> connection_;
};

// Records the layout version in a fresh cluster; refuses a newer one.
Result<void> checkLayout(Store& store) {
  const std::string key(EtcdStore::kLayoutKey);
  const std::string mine = std::to_string(EtcdStore::kLayoutVersion);
  const Compare absent[] = {Compare::absent(key)};
  const Op create[] = {Op::put(key, mine)};
  const Op read[] = {Op::get(key)};
  auto r = store.txn(absent, create, read);
  if (!r) return std::move(r).error();
  if (r->succeeded) return ok();
  const auto& kvs = r->results.at(0).kvs;
  std::string value = kvs.empty() ? "" : kvs.front().value;
  int version = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), version);
  if (ec != std::errc() || end != value.data() + value.size() || version <= 0) {
    return Error(Errc::InvalidArgument, "etcd key " + key + " holds '" + value.substr(0, 64) +
                                            "', not a layout version: another application "
                                            "uses /canopy/ in this etcd");
  }
  if (version > EtcdStore::kLayoutVersion) {
    return Error(Errc::InvalidArgument,
                 "etcd holds Canopy's layout version " + value + " (" + key +
                     "), written by a newer Canopy; this build knows up to " + mine);
  }
  return ok();
}

}  // namespace

Result<EtcdOptions> EtcdStore::parse(std::string_view endpoints) {
  if (endpoints.starts_with("//")) endpoints.remove_prefix(2);
  while (!endpoints.empty() && endpoints.back() == '/') endpoints.remove_suffix(1);
  EtcdOptions options;
  size_t start = 0;
  while (start <= endpoints.size()) {
    size_t comma = endpoints.find(',', start);
    if (comma == std::string_view::npos) comma = endpoints.size();
    std::string_view one = endpoints.substr(start, comma - start);
    auto colon = one.rfind(':');
    unsigned port = 0;
    bool good = colon != std::string_view::npos && colon > 0 && colon + 1 < one.size();
    if (good) {
      auto digits = one.substr(colon + 1);
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
      good = ec == std::errc() && end == digits.data() + digits.size() && port > 0 && port < 65536;
    }
    if (!good) {
      return Error(Errc::InvalidArgument,
                   "etcd endpoint '" + std::string(one) +
                       "' is not HOST:PORT (etcd://HOST:PORT[,HOST:PORT...])");
    }
    options.endpoints.emplace_back(one);
    start = comma + 1;
  }
  return options;
}

Result<std::unique_ptr<Store>> EtcdStore::open(const EtcdOptions& options) {
  if (options.endpoints.empty()) return Error(Errc::InvalidArgument, "no etcd endpoint given");
  auto connection = std::make_shared<Connection>(options);
  auto store = std::make_unique<EtcdStoreImpl>(connection);
  if (auto r = checkLayout(*store); !r) {
    return r.error().withContext("etcd " + connection->members());
  }
  spdlog::debug("store etcd://{} open at revision {}", connection->members(),
                connection->lastRevision());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace canopy::store
