#pragma once
// Network interfaces appearing and going, from the kernel (rtnetlink's link
// group): what lets canopy-agent attach to a VM's tap as soon as the
// hypervisor creates it, instead of at its next look.
//
//   auto w = LinkWatcher::start([&](const std::string& name) { agent.linkChanged(name); });
//   ...
//   w->reset();  // stops its thread
//
// The callback runs on the watcher's own thread for each RTM_NEWLINK and
// RTM_DELLINK (a link that changes state is reported again); after a lost
// message (the socket's buffer overran) it is called with "" (anything may
// have changed). It must not block for long.
//
// Thread-safety: start() and the destructor from one thread.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/result.h"

namespace canopy::agent {

class LinkWatcher {
 public:
  using Callback = std::function<void(const std::string& interface)>;
  static Result<std::unique_ptr<LinkWatcher>> start(Callback callback);
  ~LinkWatcher();
  LinkWatcher(const LinkWatcher&) = delete;
  LinkWatcher& operator=(const LinkWatcher&) = delete;

 private:
  LinkWatcher(int fd, int stop_fd, Callback callback);
  void run();

  const int fd_;       // the netlink socket
  const int stop_fd_;  // an eventfd that ends run()
  Callback callback_;
  std::thread thread_;
};

}  // namespace canopy::agent
