#include "datapath/conntrack/fragments.h"

namespace canopy::datapath::conntrack {

FragmentTable::Name FragmentTable::nameOf(const packet::ParsedPacket& p) {
  return Name{.eth_type = p.key.eth_type,
              .protocol = p.key.ip_proto,
              .id = p.fragment_id,
              .src = p.key.ip_src,
              .dst = p.key.ip_dst};
}

void FragmentTable::remember(const packet::ParsedPacket& p, SteadyTime now) {
  // Forget what expired, or the oldest when full: entries go in the order
  // they came (a name remembered again is found by its newer time).
  while (!order_.empty() &&
         (order_.front().second + lifetime_ <= now || order_.size() >= capacity_)) {
    auto it = entries_.find(order_.front().first);
    if (it != entries_.end() && it->second.expires <= order_.front().second + lifetime_) {
      entries_.erase(it);
    }
    order_.pop_front();
  }
  Name name = nameOf(p);
  entries_[name] = Flow{p.key.tp_src, p.key.tp_dst, p.key.icmp_id, now + lifetime_};
  order_.emplace_back(name, now);
}

bool FragmentTable::fill(packet::ParsedPacket& p, SteadyTime now) const {
  auto it = entries_.find(nameOf(p));
  if (it == entries_.end() || it->second.expires <= now) return false;
  p.key.tp_src = it->second.tp_src;
  p.key.tp_dst = it->second.tp_dst;
  p.key.icmp_id = it->second.icmp_id;
  p.fragment_ports = true;
  return true;
}

}  // namespace canopy::datapath::conntrack
