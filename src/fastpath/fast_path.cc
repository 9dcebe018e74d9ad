#include "fastpath/fast_path.h"

#include <cerrno>
#include <cstring>

#ifdef CANOPY_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>

#include "fastpath.skel.h"
#endif

namespace canopy::fastpath {

#ifdef CANOPY_HAVE_BPF

namespace {

// libbpf's messages, the verifier's log among them: its line before
// "processed N insns" says why a program was refused; else libbpf's last.
thread_local std::string last_message, last_line, verifier_says;

int keepLast(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buffer[4096];
  int n = std::vsnprintf(buffer, sizeof(buffer), format, args);
  if (n <= 0) return 0;
  std::string text(buffer);
  size_t start = 0;
  while (start < text.size()) {  // (the verifier's log comes as one message)
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end == std::string::npos ? end : end - start);
    start = end == std::string::npos ? text.size() : end + 1;
    if (line.empty()) continue;
    if (line.rfind("processed ", 0) == 0 && !last_line.empty()) verifier_says = last_line;
    last_line = line;
    last_message = verifier_says.empty() ? line : "the verifier: " + verifier_says;
  }
  return 0;
}

Error bpfError(const std::string& what, int err) {
  std::string why = std::strerror(err < 0 ? -err : err);
  if (!last_message.empty()) why += " (" + last_message + ")";
  Errc code = err == -EPERM || err == EPERM ? Errc::PermissionDenied : Errc::Unavailable;
  return Error(code, "fast path: " + what + ": " + why);
}

}  // namespace

struct FastPath::Impl {
  fastpath_bpf* skel = nullptr;
  // Interfaces with our program, and whether we added their clsact qdisc.
  std::map<int, bool> attached;

  ~Impl() {
    while (!attached.empty()) detach(attached.begin()->first);
    if (skel != nullptr) fastpath_bpf::destroy(skel);
  }

  void detach(int ifindex) {
    auto it = attached.find(ifindex);
    if (it == attached.end()) return;
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1);
    bpf_tc_detach(&hook, &opts);  // gone with the interface already: nothing to do
    if (it->second) {
      hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      bpf_tc_hook_destroy(&hook);
    }
    attached.erase(it);
  }
};

Result<std::unique_ptr<FastPath>> FastPath::open() {
  libbpf_set_print(keepLast);
  last_message.clear();
  verifier_says.clear();
  fastpath_bpf* skel = fastpath_bpf::open_and_load();
  if (skel == nullptr) return bpfError("loading the programs", errno);
  auto impl = std::make_unique<Impl>();
  impl->skel = skel;
  return std::unique_ptr<FastPath>(new FastPath(std::move(impl)));
}

Result<void> FastPath::configure(const canopy_fp_config& config) {
  uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.config), &zero, &config, BPF_ANY) != 0) {
    return Error(Errc::Unavailable, std::string("fast path: configuring: ") + std::strerror(errno));
  }
  return ok();
}

Result<void> FastPath::attach(int ifindex, Hook which) {
  if (impl_->attached.count(ifindex) != 0) return ok();
  last_message.clear();
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);
  if (err != 0 && err != -EEXIST)
    return bpfError("clsact on interface " + std::to_string(ifindex), err);
  const bool created = err == 0;
  bpf_program* program = which == Hook::Port ? impl_->skel->progs.canopy_tc_ingress
                                             : impl_->skel->progs.canopy_tc_underlay;
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(program),
                      .flags = BPF_TC_F_REPLACE, .handle = 1, .priority = 1);
  if (err = bpf_tc_attach(&hook, &opts); err != 0) {
    if (created) {
      hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      bpf_tc_hook_destroy(&hook);
    }
    return bpfError("attaching to interface " + std::to_string(ifindex), err);
  }
  impl_->attached[ifindex] = created;
  return ok();
}

void FastPath::detach(int ifindex) { impl_->detach(ifindex); }

int FastPath::socketFilter() const {
  return bpf_program__fd(impl_->skel->progs.canopy_socket_filter);
}

Result<void> FastPath::install(const FlowKey& key, const FlowAction& action) {
  int fd = bpf_map__fd(impl_->skel->maps.flows);
  if (bpf_map_update_elem(fd, &key, &action, BPF_ANY) != 0) {
    int err = errno;
    return Error(err == E2BIG ? Errc::InvalidArgument : Errc::Unavailable,
                 std::string("fast path: installing a flow: ") +
                     (err == E2BIG ? "the flow map is full" : std::strerror(err)));
  }
  return ok();
}

void FastPath::remove(const FlowKey& key) {
  bpf_map_delete_elem(bpf_map__fd(impl_->skel->maps.flows), &key);
}

std::optional<FlowAction> FastPath::find(const FlowKey& key) const {
  FlowAction a{};
  if (bpf_map_lookup_elem(bpf_map__fd(impl_->skel->maps.flows), &key, &a) != 0) {
    return std::nullopt;
  }
  return a;
}

size_t FastPath::flows() const {
  int fd = bpf_map__fd(impl_->skel->maps.flows);
  size_t n = 0;
  FlowKey key{}, next{};
  const void* at = nullptr;
  while (bpf_map_get_next_key(fd, at, &next) == 0) {
    ++n;
    key = next;
    at = &key;
  }
  return n;
}

Counters FastPath::counters() const {
  int fd = bpf_map__fd(impl_->skel->maps.counters);
  int cpus = libbpf_num_possible_cpus();
  std::vector<uint64_t> per_cpu(cpus > 0 ? static_cast<size_t>(cpus) : 1);
  auto sum = [&](uint32_t index) {
    uint64_t total = 0;
    if (bpf_map_lookup_elem(fd, &index, per_cpu.data()) == 0) {
      for (uint64_t v : per_cpu) total += v;
    }
    return total;
  };
  return {.hits = sum(CANOPY_FP_HIT),
          .misses = sum(CANOPY_FP_MISS),
          .slow = sum(CANOPY_FP_SLOW),
          .not_ipv4 = sum(CANOPY_FP_NOT_IPV4),
          .malformed = sum(CANOPY_FP_MALFORMED),
          .redirect_failed = sum(CANOPY_FP_REDIRECT_FAIL),
          .no_route = sum(CANOPY_FP_NO_ROUTE),
          .tunnel_in = sum(CANOPY_FP_TUNNEL_IN),
          .handed_back = sum(CANOPY_FP_HANDED_BACK)};
}

#else  // built without BPF: open() says so; nothing else is reached.

struct FastPath::Impl {};

Result<std::unique_ptr<FastPath>> FastPath::open() {
  return Error(Errc::Unavailable,
               "fast path: built without BPF (clang, bpftool or libbpf missing)");
}
Result<void> FastPath::configure(const canopy_fp_config&) {
  return Error(Errc::Unavailable, "fast path: built without BPF");
}
Result<void> FastPath::attach(int, Hook) {
  return Error(Errc::Unavailable, "fast path: built without BPF");
}
void FastPath::detach(int) {}
int FastPath::socketFilter() const { return -1; }
Result<void> FastPath::install(const FlowKey&, const FlowAction&) {
  return Error(Errc::Unavailable, "fast path: built without BPF");
}
void FastPath::remove(const FlowKey&) {}
std::optional<FlowAction> FastPath::find(const FlowKey&) const { return std::nullopt; }
size_t FastPath::flows() const { return 0; }
Counters FastPath::counters() const { return {}; }

#endif

FastPath::FastPath(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FastPath::~FastPath() = default;

}  // namespace canopy::fastpath
