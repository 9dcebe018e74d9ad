#include "fastpath/fast_path.h"

#include <cerrno>
#include <cstring>
#include <utility>

#ifdef CANOPY_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
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

// The program of ours an earlier agent left at our place on `ifindex`, or
// -1 (its file descriptor: the caller closes it).
int leftoverProgram(int ifindex) {
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1);
  if (bpf_tc_query(&hook, &opts) != 0 || opts.prog_id == 0) return -1;
  int fd = bpf_prog_get_fd_by_id(opts.prog_id);
  if (fd < 0) return -1;
  bpf_prog_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0 ||
      std::strncmp(info.name, "canopy_tc_", 10) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Takes over the maps of `program` that are laid out as the skeleton's
// (same name, type, key and value sizes and size), for the programs about
// to be loaded. How many.
int adoptMaps(fastpath_bpf* skel, int program) {
  bpf_prog_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(program, &info, &length) != 0 || info.nr_map_ids == 0) return 0;
  std::vector<uint32_t> ids(info.nr_map_ids);
  const uint32_t n = info.nr_map_ids;
  info = {};
  info.nr_map_ids = n;
  info.map_ids = reinterpret_cast<uint64_t>(ids.data());
  length = sizeof(info);
  if (bpf_obj_get_info_by_fd(program, &info, &length) != 0) return 0;
  int adopted = 0;
  for (uint32_t i = 0; i < std::min(n, info.nr_map_ids); ++i) {
    int fd = bpf_map_get_fd_by_id(ids[i]);
    if (fd < 0) continue;
    bpf_map_info m{};
    uint32_t m_length = sizeof(m);
    bpf_map* ours = nullptr;
    if (bpf_obj_get_info_by_fd(fd, &m, &m_length) == 0) {
      ours = bpf_object__find_map_by_name(skel->obj, m.name);
    }
    if (ours != nullptr && bpf_map__type(ours) == static_cast<bpf_map_type>(m.type) &&
        bpf_map__key_size(ours) == m.key_size && bpf_map__value_size(ours) == m.value_size &&
        bpf_map__max_entries(ours) == m.max_entries && bpf_map__reuse_fd(ours, fd) == 0) {
      ++adopted;
    }
    ::close(fd);  // (reuse_fd keeps its own)
  }
  return adopted;
}

}  // namespace

struct FastPath::Impl {
  fastpath_bpf* skel = nullptr;
  // Interfaces with our program, and whether we added their clsact qdisc.
  std::map<int, bool> attached;
  canopy_fp_config config{.geneve_port = 0,
                          .vxlan_port = 0,
                          .underlay_ifindex = 0,
                          .alive_until_ns = UINT64_MAX,
                          .half_open = 0,
                          .reserved = 0};
  std::vector<FlowKey> adopted;
  std::vector<FastPath::MadeConnection> adopted_made;

  ring_buffer* events = nullptr;
  const std::function<void(const Event&)>* on_event = nullptr;

  static int onEvent(void* ctx, void* data, size_t size) {
    auto* self = static_cast<Impl*>(ctx);
    if (size >= sizeof(Event) && self->on_event != nullptr) {
      Event e;
      std::memcpy(&e, data, sizeof(e));
      (*self->on_event)(e);
    }
    return 0;
  }

  ~Impl() {
    if (events != nullptr) ring_buffer__free(events);
    while (!attached.empty()) detach(attached.begin()->first);
    if (skel != nullptr) fastpath_bpf::destroy(skel);
  }

  Result<void> writeConfig() {
    uint32_t zero = 0;
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.config), &zero, &config, BPF_ANY) != 0) {
      return Error(Errc::Unavailable,
                   std::string("fast path: configuring: ") + std::strerror(errno));
    }
    return ok();
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

Result<std::unique_ptr<FastPath>> FastPath::open(bool adopt) {
  libbpf_set_print(keepLast);
  last_message.clear();
  verifier_says.clear();
  fastpath_bpf* skel = fastpath_bpf::open();
  if (skel == nullptr) return bpfError("opening the programs", errno);
  int adopted_maps = 0;
  if (adopt) {
    // The first interface with a program of ours left on it: every one
    // shares the same maps.
    if (struct if_nameindex* names = if_nameindex(); names != nullptr) {
      for (auto* n = names; n->if_index != 0 && adopted_maps == 0; ++n) {
        int program = leftoverProgram(static_cast<int>(n->if_index));
        if (program < 0) continue;
        adopted_maps = adoptMaps(skel, program);
        ::close(program);
      }
      if_freenameindex(names);
    }
  }
  if (int err = fastpath_bpf::load(skel); err != 0) {
    fastpath_bpf::destroy(skel);
    return bpfError("loading the programs", err);
  }
  auto impl = std::make_unique<Impl>();
  impl->skel = skel;
  if (adopted_maps > 0) {
    int fd = bpf_map__fd(skel->maps.flows);
    FlowKey key{}, next{};
    const void* at = nullptr;
    while (bpf_map_get_next_key(fd, at, &next) == 0 && impl->adopted.size() < CANOPY_FP_MAX_FLOWS) {
      impl->adopted.push_back(next);
      key = next;
      at = &key;
    }
  }
  // An earlier agent's templates go: this one has not decided them (the
  // connections they made stay among the flows adopted, and are told as
  // such: by its template, the opener's way of each).
  if (adopted_maps > 0) {
    int fd = bpf_map__fd(skel->maps.templates);
    std::map<uint32_t, std::pair<FlowKey, Template>> templates;  // by id
    FlowKey key{};
    Template t{};
    while (bpf_map_get_next_key(fd, nullptr, &key) == 0) {
      if (bpf_map_lookup_elem(fd, &key, &t) == 0) templates[t.id] = {key, t};
      if (bpf_map_delete_elem(fd, &key) != 0) break;
    }
    const int flows = bpf_map__fd(skel->maps.flows);
    FlowAction action{};
    for (const FlowKey& k : impl->adopted) {
      if (bpf_map_lookup_elem(flows, &k, &action) != 0 || (action.flags & CANOPY_FP_MADE) == 0) {
        continue;
      }
      auto it = templates.find(action.template_id);
      if (it == templates.end()) continue;
      // The opener's way (its key with the source port left open is the
      // template's); its answer's key is the template's reply key with the
      // opener's port.
      FlowKey open = k;
      open.port_src = 0;
      if (std::memcmp(&open, &it->second.first, sizeof(open)) != 0) continue;
      FlowKey reply = it->second.second.reply_key;
      reply.port_dst = k.port_src;
      impl->adopted_made.push_back({.forward = k, .action = action, .reply = reply});
    }
  }
  // Until the agent says otherwise (keepAlive()), the flows are carried.
  if (auto r = impl->writeConfig(); !r) return r.error();
  return std::unique_ptr<FastPath>(new FastPath(std::move(impl)));
}

Result<void> FastPath::configure(const canopy_fp_config& config) {
  const uint64_t alive = impl_->config.alive_until_ns;
  impl_->config = config;
  impl_->config.alive_until_ns = alive;
  return impl_->writeConfig();
}

Result<void> FastPath::keepAlive(uint64_t until_ns) {
  impl_->config.alive_until_ns = until_ns;
  return impl_->writeConfig();
}

std::vector<FlowKey> FastPath::takeAdopted() { return std::exchange(impl_->adopted, {}); }
std::vector<FastPath::MadeConnection> FastPath::takeAdoptedMade() {
  return std::exchange(impl_->adopted_made, {});
}

void FastPath::leave() { impl_->attached.clear(); }

void FastPath::removeLeftover(int ifindex) {
  int program = ifindex > 0 ? leftoverProgram(ifindex) : -1;
  if (program < 0) return;
  ::close(program);
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1);
  bpf_tc_detach(&hook, &opts);
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

void FastPath::remove(std::span<const FlowKey> keys) {
  int fd = bpf_map__fd(impl_->skel->maps.flows);
  size_t at = 0;
  while (at < keys.size()) {
    uint32_t count = static_cast<uint32_t>(keys.size() - at);
    DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_delete_batch(fd, &keys[at], &count, &opts);
    at += count;
    if (err == 0) break;
    if (errno != ENOENT) {  // (a kernel without batches: one by one)
      for (; at < keys.size(); ++at) bpf_map_delete_elem(fd, &keys[at]);
      break;
    }
    ++at;  // (one not installed: passed over)
  }
}

std::optional<FlowAction> FastPath::find(const FlowKey& key) const {
  FlowAction a{};
  if (bpf_map_lookup_elem(bpf_map__fd(impl_->skel->maps.flows), &key, &a) != 0) {
    return std::nullopt;
  }
  return a;
}

void FastPath::forEachFlow(const std::function<void(const FlowKey&, const FlowAction&)>& f) const {
  int fd = bpf_map__fd(impl_->skel->maps.flows);
  constexpr uint32_t kChunk = 1024;
  std::vector<FlowKey> keys(kChunk);
  std::vector<FlowAction> actions(kChunk);
  FlowKey batch{};  // (a hash map's batch position; its key's size is room enough)
  bool first = true;
  for (;;) {
    uint32_t count = kChunk;
    DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_batch(fd, first ? nullptr : &batch, &batch, keys.data(),
                                   actions.data(), &count, &opts);
    const bool end = err != 0 && errno == ENOENT;
    first = false;
    if (err != 0 && !end) return;
    for (uint32_t i = 0; i < count; ++i) f(keys[i], actions[i]);
    if (end) return;
  }
}

Result<void> FastPath::installTemplate(const FlowKey& key, const Template& t) {
  int fd = bpf_map__fd(impl_->skel->maps.templates);
  if (bpf_map_update_elem(fd, &key, &t, BPF_ANY) != 0) {
    int err = errno;
    return Error(err == E2BIG ? Errc::InvalidArgument : Errc::Unavailable,
                 std::string("fast path: installing a template: ") +
                     (err == E2BIG ? "the template map is full" : std::strerror(err)));
  }
  return ok();
}

void FastPath::removeTemplate(const FlowKey& key) {
  bpf_map_delete_elem(bpf_map__fd(impl_->skel->maps.templates), &key);
}

Result<void> FastPath::installLbTable(uint32_t id, const LbTable& table) {
  int fd = bpf_map__fd(impl_->skel->maps.lb_tables);
  if (id == 0 || bpf_map_update_elem(fd, &id, &table, BPF_ANY) != 0) {
    int err = id == 0 ? EINVAL : errno;
    return Error(err == E2BIG || err == EINVAL ? Errc::InvalidArgument : Errc::Unavailable,
                 std::string("fast path: installing a load balancer's table: ") +
                     (err == E2BIG ? "the map is full" : std::strerror(err)));
  }
  return ok();
}

void FastPath::removeLbTable(uint32_t id) {
  bpf_map_delete_elem(bpf_map__fd(impl_->skel->maps.lb_tables), &id);
}

int FastPath::eventsFd() {
  if (impl_->events == nullptr) {
    impl_->events = ring_buffer__new(bpf_map__fd(impl_->skel->maps.events), &Impl::onEvent,
                                     impl_.get(), nullptr);
  }
  return impl_->events != nullptr ? ring_buffer__epoll_fd(impl_->events) : -1;
}

size_t FastPath::takeEvents(const std::function<void(const Event&)>& f) {
  if (eventsFd() < 0) return 0;
  impl_->on_event = &f;
  int n = ring_buffer__consume(impl_->events);
  impl_->on_event = nullptr;
  return n > 0 ? static_cast<size_t>(n) : 0;
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
          .not_ip = sum(CANOPY_FP_NOT_IP),
          .malformed = sum(CANOPY_FP_MALFORMED),
          .redirect_failed = sum(CANOPY_FP_REDIRECT_FAIL),
          .no_route = sum(CANOPY_FP_NO_ROUTE),
          .tunnel_in = sum(CANOPY_FP_TUNNEL_IN),
          .handed_back = sum(CANOPY_FP_HANDED_BACK),
          .made = sum(CANOPY_FP_MADE_CONNECTIONS),
          .made_limited = sum(CANOPY_FP_MADE_LIMITED)};
}

#else  // built without BPF: open() says so; nothing else is reached.

struct FastPath::Impl {};

Result<std::unique_ptr<FastPath>> FastPath::open(bool) {
  return Error(Errc::Unavailable,
               "fast path: built without BPF (clang, bpftool or libbpf missing)");
}
Result<void> FastPath::configure(const canopy_fp_config&) {
  return Error(Errc::Unavailable, "fast path: built without BPF");
}
Result<void> FastPath::keepAlive(uint64_t) {
  return Error(Errc::Unavailable, "fast path: built without BPF");
}
std::vector<FlowKey> FastPath::takeAdopted() { return {}; }
std::vector<FastPath::MadeConnection> FastPath::takeAdoptedMade() { return {}; }
void FastPath::leave() {}
void FastPath::removeLeftover(int) {}
Result<void> FastPath::attach(int, Hook) {
  return Error(Errc::Unavailable, "fast path: built without BPF");
}
void FastPath::detach(int) {}
int FastPath::socketFilter() const { return -1; }
Result<void> FastPath::install(const FlowKey&, const FlowAction&) {
  return Error(Errc::Unavailable, "fast path: built without BPF");
}
void FastPath::remove(const FlowKey&) {}
void FastPath::remove(std::span<const FlowKey>) {}
std::optional<FlowAction> FastPath::find(const FlowKey&) const { return std::nullopt; }
void FastPath::forEachFlow(const std::function<void(const FlowKey&, const FlowAction&)>&) const {}
Result<void> FastPath::installTemplate(const FlowKey&, const Template&) {
  return Error(Errc::Unavailable, "fast path: built without BPF");
}
void FastPath::removeTemplate(const FlowKey&) {}
Result<void> FastPath::installLbTable(uint32_t, const LbTable&) {
  return Error(Errc::Unavailable, "fast path: built without BPF");
}
void FastPath::removeLbTable(uint32_t) {}
int FastPath::eventsFd() { return -1; }
size_t FastPath::takeEvents(const std::function<void(const Event&)>&) { return 0; }
size_t FastPath::flows() const { return 0; }
Counters FastPath::counters() const { return {}; }

#endif

FastPath::FastPath(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FastPath::~FastPath() = default;

}  // namespace canopy::fastpath
