// SPDX-License-Identifier: GPL-2.0-only
/* Canopy's kernel fast path: flows the userspace datapath decided, run in
 * the kernel.
 *
 * canopy_tc_ingress (tc clsact ingress on the host side of a VM's
 * interface: a veth's, or a hypervisor's tap; and on an uplink) looks a
 * packet's flow up in `flows`; a packet of an installed flow that needs
 * nothing the agent must see is rewritten as the flow's action says (MACs,
 * TTL, a floating IP's or port forwarding's translation) and redirected to
 * its destination's interface (a VM's, an uplink, the tunnel). Everything
 * else goes on (TC_ACT_OK) to the agent, which already has it: the agent's
 * AF_PACKET socket on the interface sees packets before tc ingress does.
 * So that it does not take the fast path's packets too, its socket carries
 * canopy_socket_filter, which keeps exactly the packets canopy_tc_ingress
 * passes on: both decide with fast_path_action().
 *
 * The agent's: a packet that is not IPv4 without options or IPv6 without
 * extension headers, a fragment, TCP with RST, or SYN (unless its flow
 * was made here: decide()), ICMP or ICMPv6
 * other than echo, other protocols, a TTL (hop limit) that routing would
 * end, or larger than the flow's MTU; a VLAN tag is part of the key (only
 * an uplink's VLAN network's flows have one).
 *
 * Only packet data and __sk_buff (UAPI) are read: no kernel structure, so
 * the object needs no relocation (CO-RE) to run on any kernel with these
 * helpers (5.10 and later: bpf_redirect_peer). */
// clang-format off
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "fastpath.h"

#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV6 /* (newer than some distributions' headers) */
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, CANOPY_FP_MAX_FLOWS);
  __type(key, struct canopy_fp_key);
  __type(value, struct canopy_fp_action);
} flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, CANOPY_FP_MAX_TEMPLATES);
  __type(key, struct canopy_fp_key);
  __type(value, struct canopy_fp_template);
} templates SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);
  __type(value, struct canopy_fp_budget);
} budgets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, CANOPY_FP_MAX_LB_TABLES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct canopy_fp_lb_table);
} lb_tables SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, CANOPY_FP_EVENTS_SIZE);
} events SEC(".maps");

/* Where a made flow is put together (too large for the stack). */
struct made {
  struct canopy_fp_key key;
  struct canopy_fp_action action;
};
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct made);
} scratch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct canopy_fp_config);
} config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, CANOPY_FP_COUNTERS);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which) {
  __u64* c = bpf_map_lookup_elem(&counters, &which);
  if (c) *c += 1;
}

#define IP_OFFSET_BITS 0x3fff /* MF and the fragment offset */
#define ETH_LEN 14
#define IP_LEN 20
#define IP6_LEN 40

struct parsed {
  struct canopy_fp_key key;
  __u8 ttl;     /* IPv6: the hop limit */
  __u16 ip_len; /* the IP packet's length */
  __u16 ip_header;
  __u16 l4_len; /* its L4 header's, for the segments of a GSO packet */
  __u8 syn;     /* TCP: SYN (a connection's opening, or its answer with ack) */
  __u8 ack;
  __u8 fin;
};

/* The flow key of the frame at `base` (0, or a tunnel's inner frame), or
 * which counter says why it has none. */
static __always_inline int parse(struct __sk_buff* skb, __u32 base, struct parsed* p) {
  struct ethhdr eth;
  /* (A tag the kernel took off stays in the key: an uplink's VLAN network's
   * flows are keyed by it, and nothing else's has one.) */
  if (skb->vlan_present) p->key.vlan = (__u16)(skb->vlan_tci & 0x0fff);
  if (bpf_skb_load_bytes(skb, base, &eth, sizeof(eth)) < 0) return CANOPY_FP_MALFORMED;
  p->key.ifindex = skb->ifindex;
  __builtin_memcpy(p->key.eth_src, eth.h_source, 6);
  __builtin_memcpy(p->key.eth_dst, eth.h_dest, 6);
  __u8 protocol = 0;
  if (eth.h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, base + ETH_LEN, &ip, sizeof(ip)) < 0) return CANOPY_FP_MALFORMED;
    if (ip.version != 4 || ip.ihl != 5) {
      return ip.version != 4 ? CANOPY_FP_MALFORMED : CANOPY_FP_SLOW;
    }
    if (ip.frag_off & bpf_htons(IP_OFFSET_BITS)) return CANOPY_FP_SLOW;
    p->key.family = 4;
    __builtin_memcpy(p->key.ip_src, &ip.saddr, 4);
    __builtin_memcpy(p->key.ip_dst, &ip.daddr, 4);
    protocol = ip.protocol;
    p->ttl = ip.ttl;
    p->ip_header = IP_LEN;
    p->ip_len = bpf_ntohs(ip.tot_len);
  } else if (eth.h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr ip;
    if (bpf_skb_load_bytes(skb, base + ETH_LEN, &ip, sizeof(ip)) < 0) return CANOPY_FP_MALFORMED;
    if (ip.version != 6) return CANOPY_FP_MALFORMED;
    /* Extension headers (a fragment's among them) are the agent's. */
    if (ip.nexthdr != IPPROTO_TCP && ip.nexthdr != IPPROTO_UDP && ip.nexthdr != IPPROTO_ICMPV6) {
      return CANOPY_FP_SLOW;
    }
    p->key.family = 6;
    __builtin_memcpy(p->key.ip_src, &ip.saddr, 16);
    __builtin_memcpy(p->key.ip_dst, &ip.daddr, 16);
    protocol = ip.nexthdr;
    p->ttl = ip.hop_limit;
    p->ip_header = IP6_LEN;
    p->ip_len = (__u16)(IP6_LEN + bpf_ntohs(ip.payload_len));
    if (bpf_ntohs(ip.payload_len) > 0xffff - IP6_LEN) return CANOPY_FP_SLOW;
  } else {
    return CANOPY_FP_NOT_IP;
  }
  p->key.protocol = protocol;
  /* As the agent's parser: lengths that do not fit are its to refuse. */
  if (p->ip_len < p->ip_header || p->ip_len > skb->len - base - ETH_LEN) {
    return CANOPY_FP_MALFORMED;
  }
  const __u32 l4 = base + ETH_LEN + p->ip_header;
  const __u32 l4_room = p->ip_len - p->ip_header;
  switch (protocol) {
    case IPPROTO_TCP: {
      struct tcphdr tcp;
      if (bpf_skb_load_bytes(skb, l4, &tcp, sizeof(tcp)) < 0) return CANOPY_FP_MALFORMED;
      if (tcp.doff < 5 || tcp.doff * 4u > l4_room) return CANOPY_FP_MALFORMED;
      if (tcp.rst || (tcp.fin && tcp.syn)) return CANOPY_FP_SLOW;
      p->syn = tcp.syn;
      p->ack = tcp.ack;
      p->fin = tcp.fin;
      p->key.port_src = tcp.source;
      p->key.port_dst = tcp.dest;
      p->l4_len = (__u16)(tcp.doff * 4);
      return -1;
    }
    case IPPROTO_UDP: {
      struct udphdr udp;
      if (bpf_skb_load_bytes(skb, l4, &udp, sizeof(udp)) < 0) return CANOPY_FP_MALFORMED;
      if (bpf_ntohs(udp.len) < sizeof(udp) || bpf_ntohs(udp.len) > l4_room) {
        return CANOPY_FP_MALFORMED;
      }
      p->key.port_src = udp.source;
      p->key.port_dst = udp.dest;
      p->l4_len = sizeof(udp);
      return -1;
    }
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6: {
      __u8 head[6]; /* type, code, checksum, identifier */
      if ((protocol == IPPROTO_ICMP) != (p->key.family == 4)) return CANOPY_FP_SLOW;
      if (bpf_skb_load_bytes(skb, l4, head, sizeof(head)) < 0 || l4_room < 8) {
        return CANOPY_FP_MALFORMED;
      }
      /* Echo requests and replies only (ND and errors are the agent's). */
      if (protocol == IPPROTO_ICMP ? head[0] != 0 && head[0] != 8
                                   : head[0] != 128 && head[0] != 129) {
        return CANOPY_FP_SLOW;
      }
      __builtin_memcpy(&p->key.port_src, &head[4], 2);
      p->key.port_dst = bpf_htons(head[0]);
      p->l4_len = 8;
      return -1;
    }
    default:
      return CANOPY_FP_SLOW;
  }
}

/* Whether a packet of flow `a` is the agent's after all: its TTL would
 * end, or it (each segment of a GSO packet, with its headers) is larger
 * than the flow's MTU. */
static __always_inline int agents_packet(struct __sk_buff* skb, struct canopy_fp_action* a,
                                         struct parsed* p) {
  if ((a->flags & CANOPY_FP_DECREMENT_TTL) && p->ttl <= 1) return 1;
  if (a->mtu != 0) {
    __u32 each = skb->gso_size != 0 ? p->ip_header + p->l4_len + skb->gso_size : p->ip_len;
    if (each > a->mtu) return 1;
  }
  return 0;
}

/* Whether the agent has shown a sign of life recently enough for its flows
 * to be carried (canopy_fp_config.alive_until_ns). */
static __always_inline int agent_alive(void) {
  __u32 zero = 0;
  struct canopy_fp_config* cfg = bpf_map_lookup_elem(&config, &zero);
  return cfg && bpf_ktime_get_ns() <= cfg->alive_until_ns;
}

/* The tunnel's UDP source port for a tuple (network byte order), as the
 * datapath chooses it (Datapath::emitTunnel): the first four bytes of each
 * address as a little-endian word, the ports in host order. */
static __always_inline __u16 canopy_fp_tunnel_port(__u32 src, __u32 dst, __u16 port_src,
                                                   __u16 port_dst, __u8 protocol) {
  __u32 mix = (src ^ dst ^ ((__u32)port_src << 16 | port_dst) ^ protocol) * 0x9e3779b1u;
  return bpf_htons((__u16)(0xc000 | (mix >> 18)));
}

/* Canopy's stable hash (datapath/nat/maglev.cc stableHash, seed 0): FNV-1a
 * over the bytes, then splitmix64's finaliser. */
#define FNV_PRIME 0x100000001b3ULL
static __always_inline __u64 fnv_bytes(__u64 h, const __u8* bytes, __u32 n, __u32 max) {
  for (__u32 i = 0; i < max; ++i) {
    if (i >= n) break;
    h ^= bytes[i];
    h *= FNV_PRIME;
  }
  return h;
}
static __always_inline __u64 mix64(__u64 x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/* The member (its index plus one; 0: none) table `id` gives a new
 * connection, as the datapath's Maglev lookup would. */
static __always_inline __u16 lb_pick(struct parsed* p, __u32 id) {
  struct canopy_fp_lb_table* t = bpf_map_lookup_elem(&lb_tables, &id);
  if (!t || t->size == 0 || t->size > CANOPY_FP_LB_TABLE_MAX) return 0;
  const __u32 width = p->key.family == 6 ? 16 : 4;
  __u64 h = 0xcbf29ce484222325ULL; /* (mix64 of the seed 0 is 0) */
  h = fnv_bytes(h, p->key.ip_src, width, 16);
  if (!t->source_only) {
    h = fnv_bytes(h, p->key.ip_dst, width, 16);
    __u8 rest[5];
    rest[0] = p->key.protocol;
    __builtin_memcpy(&rest[1], &p->key.port_src, 2); /* (network order: high byte first) */
    __builtin_memcpy(&rest[3], &p->key.port_dst, 2);
    h = fnv_bytes(h, rest, 5, 5);
  }
  const __u64 slot = mix64(h) % t->size;
  if (slot >= CANOPY_FP_LB_TABLE_MAX) return 0;
  const __u16 member = t->members[slot & (CANOPY_FP_LB_TABLE_MAX - 1)];
  return member == CANOPY_FP_LB_NONE ? 0 : (__u16)(member + 1);
}

#define TAKE -1 /* an installed flow takes it */
#define MAKE -2 /* a template makes its connection's flows */

/* What becomes of a parsed packet (its key complete): an installed flow
 * takes it (`a`), a template makes its flows (`t`: a connection's SYN), or
 * the counter that says why it is the agent's. A SYN or SYN-ACK is carried
 * only by a flow made from a template: the agent has not seen its
 * connection open; every other connection's are the agent's. */
static __always_inline int decide(struct __sk_buff* skb, struct parsed* p,
                                  struct canopy_fp_action** a, struct canopy_fp_template** t) {
  *a = bpf_map_lookup_elem(&flows, &p->key);
  if (!*a) {
    if (p->syn && !p->ack && p->key.protocol == IPPROTO_TCP) {
      struct canopy_fp_key k = p->key;
      k.port_src = 0;
      *t = bpf_map_lookup_elem(&templates, &k);
      if (*t && (*t)->lb_table != 0) {
        /* A VIP's: the template of the member its table picks, if the
         * agent has one (else the agent balances this SYN itself, and
         * learns that member's). */
        k.lb_member = lb_pick(p, (*t)->lb_table);
        *t = k.lb_member != 0 ? bpf_map_lookup_elem(&templates, &k) : 0;
        if (*t && (*t)->lb_table != 0) *t = 0;
      }
      if (*t) return MAKE;
    }
    return CANOPY_FP_MISS;
  }
  if (p->syn && !((*a)->flags & CANOPY_FP_MADE)) return CANOPY_FP_SLOW;
  if (p->fin && ((*a)->flags & CANOPY_FP_FIN_TO_AGENT)) return CANOPY_FP_SLOW;
  if ((*a)->flags & CANOPY_FP_BROKEN) return CANOPY_FP_NO_ROUTE; /* its route failed */
  if (agents_packet(skb, *a, p)) return CANOPY_FP_SLOW;
  return TAKE;
}

/* The same for a packet as it came in on a VM's interface or an uplink. */
static __always_inline int classify(struct __sk_buff* skb, struct parsed* p,
                                    struct canopy_fp_action** a, struct canopy_fp_template** t) {
  if (!agent_alive()) return CANOPY_FP_HEADLESS;
  int r = parse(skb, 0, p);
  if (r >= 0) return r;
  return decide(skb, p, a, t);
}

/* Whether the port (interface) the SYN came from may make another
 * connection now, counted if so (`counted`: whose count its answer ends;
 * canopy_fp_config.half_open). One from a tunnel always may: its sending
 * host bounded it. */
static __always_inline int within_budget(struct parsed* p, __u32* counted) {
  __u32 zero = 0;
  struct canopy_fp_config* cfg = bpf_map_lookup_elem(&config, &zero);
  *counted = 0;
  if (!cfg) return 0;
  if (cfg->half_open == 0 || p->key.tunnel_family != 0) return 1;
  __u32 port = p->key.ifindex;
  const __u64 now = bpf_ktime_get_ns();
  struct canopy_fp_budget* b = bpf_map_lookup_elem(&budgets, &port);
  if (!b) {
    struct canopy_fp_budget first = {.window_ns = now, .half_open = 1};
    if (bpf_map_update_elem(&budgets, &port, &first, BPF_NOEXIST) != 0) return 0;
    *counted = port;
    return 1;
  }
  if (now - b->window_ns > CANOPY_FP_HALF_OPEN_WINDOW_NS) {
    /* (Those of the last window are answered, or the agent's by now.) */
    b->window_ns = now;
    b->half_open = 0;
  }
  if (b->half_open >= cfg->half_open) return 0;
  __sync_fetch_and_add(&b->half_open, 1);
  *counted = port;
  return 1;
}

/* A FIN the flow carries, told to the agent (false if it cannot be: the
 * agent is behind; then the agent takes the FIN itself). */
static __always_inline int tell_fin(struct parsed* p) {
  struct canopy_fp_event* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) return 0;
  __builtin_memcpy(&e->key, &p->key, sizeof(e->key));
  e->tcp_flags = 0x01 | (p->ack ? 0x10 : 0);
  __builtin_memset(e->reserved, 0, sizeof(e->reserved));
  const __u64 waiting = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
  bpf_ringbuf_submit(e, waiting >= CANOPY_FP_EVENTS_WAKE ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
  return 1;
}

/* A made connection's SYN-ACK, taken by its answer's flow `a` for the
 * first time: its opener's port has one half-open connection fewer. */
static __always_inline void answered(struct canopy_fp_action* a, struct parsed* p) {
  if (!p->syn || !p->ack || a->budget_port == 0 || a->packets != 0) return;
  __u32 port = a->budget_port;
  struct canopy_fp_budget* b = bpf_map_lookup_elem(&budgets, &port);
  if (b && b->half_open > 0) __sync_fetch_and_add(&b->half_open, -1);
}

/* A new connection's two flows made from template `t` (the reply's first,
 * then the SYN's own; neither may exist yet): the SYN's installed action,
 * or null if they cannot be (the map full, a port over its bound, a flow
 * already there), and then the agent takes the SYN. */
static __always_inline struct canopy_fp_action* make(struct parsed* p,
                                                     struct canopy_fp_template* t) {
  __u32 counted = 0;
  if (!within_budget(p, &counted)) {
    count(CANOPY_FP_MADE_LIMITED);
    return 0;
  }
  __u32 zero = 0;
  struct made* m = bpf_map_lookup_elem(&scratch, &zero);
  if (!m) return 0;
  __builtin_memcpy(&m->key, &t->reply_key, sizeof(m->key));
  m->key.port_dst = p->key.port_src;
  __builtin_memcpy(&m->action, &t->reply, sizeof(m->action));
  __u32 src, dst;
  if (m->action.flags & CANOPY_FP_HASH_PORT) {
    __builtin_memcpy(&src, m->key.ip_src, 4);
    __builtin_memcpy(&dst, m->key.ip_dst, 4);
    m->action.udp_src = canopy_fp_tunnel_port(src, dst, bpf_ntohs(m->key.port_src),
                                              bpf_ntohs(m->key.port_dst), m->key.protocol);
  }
  m->action.flags = (m->action.flags & ~CANOPY_FP_HASH_PORT) | CANOPY_FP_MADE;
  m->action.template_id = t->id;
  m->action.budget_port = counted;
  m->action.packets = 0;
  m->action.bytes = 0;
  m->action.last_used_ns = 0;
  if (bpf_map_update_elem(&flows, &m->key, &m->action, BPF_NOEXIST) != 0) return 0;
  __builtin_memcpy(&m->action, &t->forward, sizeof(m->action));
  if (m->action.flags & CANOPY_FP_HASH_PORT) {
    __builtin_memcpy(&src, p->key.ip_src, 4);
    __builtin_memcpy(&dst, p->key.ip_dst, 4);
    m->action.udp_src = canopy_fp_tunnel_port(src, dst, bpf_ntohs(p->key.port_src),
                                              bpf_ntohs(p->key.port_dst), p->key.protocol);
  }
  m->action.flags = (m->action.flags & ~CANOPY_FP_HASH_PORT) | CANOPY_FP_MADE;
  m->action.template_id = t->id;
  m->action.budget_port = 0;
  m->action.packets = 0;
  m->action.bytes = 0;
  m->action.last_used_ns = bpf_ktime_get_ns(); /* (when it was made) */
  if (bpf_map_update_elem(&flows, &p->key, &m->action, BPF_NOEXIST) != 0) {
    bpf_map_delete_elem(&flows, &m->key);
    return 0;
  }
  __sync_fetch_and_add(&t->made, 1);
  count(CANOPY_FP_MADE_CONNECTIONS);
  return bpf_map_lookup_elem(&flows, &p->key);
}

/* Into the tunnel: room for the outer IPv4 (or IPv6) and UDP headers, the
 * tunnel header and the inner Ethernet header in front of the frame's IP
 * packet (its size; -1 without an underlay, -2 refused); then those
 * headers; then out of the underlay interface, routed and with the next
 * hop's MAC from the kernel's neighbour table (bpf_redirect_neigh, which
 * also resolves it: no forwarding is asked of the host, as a FIB lookup
 * would). */
static __always_inline int encap_room(struct __sk_buff* skb, struct canopy_fp_action* a) {
  __u32 zero = 0;
  struct canopy_fp_config* cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg || cfg->underlay_ifindex == 0) return -1;
  __u32 header_len = a->header_len;
  if (header_len > CANOPY_FP_MAX_HEADER) return -1;
  const int six = (a->flags & CANOPY_FP_TUNNEL_IPV6) != 0;
  const __u32 room = (six ? IP6_LEN : IP_LEN) + sizeof(struct udphdr) + header_len + ETH_LEN;
  const __u64 flags = (six ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4) |
                      BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
                      BPF_F_ADJ_ROOM_ENCAP_L2(ETH_LEN) | BPF_F_ADJ_ROOM_FIXED_GSO;
  /* (Refused before anything is changed: the packet is as it came.) */
  if (bpf_skb_adjust_room(skb, (__s32)room, BPF_ADJ_ROOM_MAC, flags) < 0) return -2;
  return (int)room;
}

/* The outer IP header at ETH_LEN (its length; -1 if it cannot be written):
 * IPv4 with DF, as the agent's sockets send; or IPv6. */
static __always_inline int outer_ip(struct __sk_buff* skb, struct canopy_fp_action* a) {
  if (a->flags & CANOPY_FP_TUNNEL_IPV6) {
    struct ipv6hdr ip6 = {};
    ip6.version = 6;
    ip6.payload_len = bpf_htons((__u16)(skb->len - ETH_LEN - IP6_LEN));
    ip6.nexthdr = IPPROTO_UDP;
    ip6.hop_limit = 64;
    __builtin_memcpy(&ip6.saddr, a->tunnel_src, 16);
    __builtin_memcpy(&ip6.daddr, a->tunnel_dst, 16);
    return bpf_skb_store_bytes(skb, ETH_LEN, &ip6, sizeof(ip6), 0) < 0 ? -1 : IP6_LEN;
  }
  struct iphdr ip = {};
  ip.version = 4;
  ip.ihl = 5;
  ip.tot_len = bpf_htons((__u16)(skb->len - ETH_LEN));
  ip.frag_off = bpf_htons(0x4000);
  ip.ttl = 64;
  ip.protocol = IPPROTO_UDP;
  __builtin_memcpy(&ip.saddr, a->tunnel_src, 4);
  __builtin_memcpy(&ip.daddr, a->tunnel_dst, 4);
  __u32 csum = (__u32)bpf_csum_diff(0, 0, (__be32*)&ip, IP_LEN, 0);
  csum = (csum & 0xffff) + (csum >> 16);
  csum = (csum & 0xffff) + (csum >> 16);
  ip.check = (__u16)~csum;
  return bpf_skb_store_bytes(skb, ETH_LEN, &ip, sizeof(ip), 0) < 0 ? -1 : IP_LEN;
}

/* The headers in the room encap_room() made, the inner frame's Ethernet
 * header as the flow rewrites it. Returns the underlay's index.
 *
 * The outer UDP checksum is left zero, as VXLAN over IPv4 sends it (RFC
 * 7348); over IPv6 that is a tunnel's zero checksum (RFC 6935, 6936;
 * Geneve, RFC 8926 3.3): the kernel cannot sum a guest's super-frame's
 * segments here. A receiving host's fast path decapsulates before the
 * UDP stack; its agent's tunnel sockets accept zero checksums
 * (UDP_NO_CHECK6_RX). */
static __always_inline int encap_headers(struct __sk_buff* skb, struct canopy_fp_action* a,
                                         __u8 family) {
  __u32 zero = 0;
  struct canopy_fp_config* cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg || cfg->underlay_ifindex == 0) return -1;
  __u32 header_len = a->header_len;
  if (header_len > CANOPY_FP_MAX_HEADER) return -1;
  __u8 header[CANOPY_FP_MAX_HEADER];
  __builtin_memcpy(header, a->header, CANOPY_FP_MAX_HEADER);
  const int six = (a->flags & CANOPY_FP_TUNNEL_IPV6) != 0;
  struct ethhdr eth = {}; /* (replaced by the neighbour's) */
  eth.h_proto = bpf_htons(six ? ETH_P_IPV6 : ETH_P_IP);
  const __u32 ip_len = six ? IP6_LEN : IP_LEN;
  struct udphdr udp = {};
  udp.source = a->udp_src;
  udp.dest = a->udp_dst;
  udp.len = bpf_htons((__u16)(skb->len - ETH_LEN - ip_len));
  struct ethhdr inner = {};
  __builtin_memcpy(inner.h_dest, a->eth_dst, 6);
  __builtin_memcpy(inner.h_source, a->eth_src, 6);
  inner.h_proto = bpf_htons(family == 6 ? ETH_P_IPV6 : ETH_P_IP);
  const __u32 tunnel_at = ETH_LEN + ip_len + sizeof(udp);
  if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) < 0 || outer_ip(skb, a) < 0 ||
      bpf_skb_store_bytes(skb, ETH_LEN + ip_len, &udp, sizeof(udp), 0) < 0) {
    return -2;
  }
  /* The header (a multiple of 4 bytes), a word at a time. */
  for (__u32 i = 0; i < CANOPY_FP_MAX_HEADER / 4; ++i) {
    if (i * 4 >= header_len) break;
    if (bpf_skb_store_bytes(skb, tunnel_at + i * 4, &header[i * 4], 4, 0) < 0) return -2;
  }
  if (bpf_skb_store_bytes(skb, tunnel_at + header_len, &inner, sizeof(inner), 0) < 0) return -2;
  return (int)cfg->underlay_ifindex;
}

/* One IPv4 address of the header at `ip` becomes `to`: the header's
 * checksum, and TCP's or UDP's over the pseudo-header (a UDP datagram
 * without one keeps none), as the datapath's stateless NAT does. */
static __always_inline int nat_address(struct __sk_buff* skb, struct parsed* p, __u32 ip, __u32 at,
                                       __u32 from, __u32 to) {
  const __u32 l4 = ip + IP_LEN;
  if (p->key.protocol == IPPROTO_TCP &&
      bpf_l4_csum_replace(skb, l4 + offsetof(struct tcphdr, check), from, to,
                          BPF_F_PSEUDO_HDR | sizeof(to)) < 0) {
    return -1;
  }
  if (p->key.protocol == IPPROTO_UDP &&
      bpf_l4_csum_replace(skb, l4 + offsetof(struct udphdr, check), from, to,
                          BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | sizeof(to)) < 0) {
    return -1;
  }
  if (bpf_l3_csum_replace(skb, ip + offsetof(struct iphdr, check), from, to, sizeof(to)) < 0) {
    return -1;
  }
  return (int)bpf_skb_store_bytes(skb, ip + at, &to, sizeof(to), 0);
}

/* One IPv6 address of the header at `ip` becomes `to` (16 bytes): TCP's or
 * UDP's checksum over the pseudo-header (IPv6 has no header checksum). */
static __always_inline int nat_address6(struct __sk_buff* skb, struct parsed* p, __u32 ip, __u32 at,
                                        __u8* from, __u8* to) {
  if (p->key.protocol != IPPROTO_TCP && p->key.protocol != IPPROTO_UDP) return -1;
  const __s64 diff = bpf_csum_diff((__be32*)from, 16, (__be32*)to, 16, 0);
  if (diff < 0) return -1;
  const __u32 l4 = ip + IP6_LEN;
  const __u32 sum = l4 + (p->key.protocol == IPPROTO_TCP ? offsetof(struct tcphdr, check)
                                                         : offsetof(struct udphdr, check));
  if (bpf_l4_csum_replace(skb, sum, 0, (__u32)diff, BPF_F_PSEUDO_HDR) < 0) return -1;
  return (int)bpf_skb_store_bytes(skb, ip + at, to, 16, 0);
}

/* A TCP or UDP port at `at` of the L4 header becomes `to`. */
static __always_inline int nat_port(struct __sk_buff* skb, struct parsed* p, __u32 l4, __u32 at,
                                    __u16 from, __u16 to) {
  const __u32 sum = l4 + (p->key.protocol == IPPROTO_TCP ? offsetof(struct tcphdr, check)
                                                         : offsetof(struct udphdr, check));
  const __u64 flags = p->key.protocol == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
  if (bpf_l4_csum_replace(skb, sum, from, to, flags | sizeof(to)) < 0) return -1;
  return (int)bpf_skb_store_bytes(skb, l4 + at, &to, sizeof(to), 0);
}

/* The flow's translation of the IP packet at `ip` (IPv6: a load
 * balancer's, TCP or UDP). */
static __always_inline int nat(struct __sk_buff* skb, struct canopy_fp_action* a, struct parsed* p,
                               __u32 ip) {
  if (p->key.family == 6) {
    if ((a->nat & CANOPY_FP_NAT_IP_SRC) && nat_address6(skb, p, ip, offsetof(struct ipv6hdr, saddr),
                                                        p->key.ip_src, a->nat_ip_src) < 0) {
      return -1;
    }
    if ((a->nat & CANOPY_FP_NAT_IP_DST) && nat_address6(skb, p, ip, offsetof(struct ipv6hdr, daddr),
                                                        p->key.ip_dst, a->nat_ip_dst) < 0) {
      return -1;
    }
  } else {
    __u32 src, dst, to_src, to_dst;
    __builtin_memcpy(&src, p->key.ip_src, 4);
    __builtin_memcpy(&dst, p->key.ip_dst, 4);
    __builtin_memcpy(&to_src, a->nat_ip_src, 4);
    __builtin_memcpy(&to_dst, a->nat_ip_dst, 4);
    if ((a->nat & CANOPY_FP_NAT_IP_SRC) &&
        nat_address(skb, p, ip, offsetof(struct iphdr, saddr), src, to_src) < 0) {
      return -1;
    }
    if ((a->nat & CANOPY_FP_NAT_IP_DST) &&
        nat_address(skb, p, ip, offsetof(struct iphdr, daddr), dst, to_dst) < 0) {
      return -1;
    }
  }
  if (!(a->nat & (CANOPY_FP_NAT_PORT_SRC | CANOPY_FP_NAT_PORT_DST))) return 0;
  if (p->key.protocol != IPPROTO_TCP && p->key.protocol != IPPROTO_UDP) return -1;
  const __u32 l4 = ip + p->ip_header;
  if ((a->nat & CANOPY_FP_NAT_PORT_SRC) &&
      nat_port(skb, p, l4, 0, p->key.port_src, a->nat_port_src) < 0) {
    return -1;
  }
  if ((a->nat & CANOPY_FP_NAT_PORT_DST) &&
      nat_port(skb, p, l4, 2, p->key.port_dst, a->nat_port_dst) < 0) {
    return -1;
  }
  return 0;
}

/* The flow's rewrite of the frame at `at`: its MACs (unless it goes into
 * a tunnel, whose inner Ethernet header is written whole), TTL or hop
 * limit, translation. */
static __always_inline int rewrite(struct __sk_buff* skb, struct canopy_fp_action* a,
                                   struct parsed* p, __u32 at, int set_eth) {
  if (set_eth && (a->flags & CANOPY_FP_SET_ETH)) {
    if (bpf_skb_store_bytes(skb, at, a->eth_dst, 6, 0) < 0 ||
        bpf_skb_store_bytes(skb, at + 6, a->eth_src, 6, 0) < 0) {
      return -1;
    }
  }
  if ((a->flags & CANOPY_FP_DECREMENT_TTL) && p->key.family == 6) {
    __u8 hops = p->ttl - 1; /* (no header checksum) */
    bpf_skb_store_bytes(skb, at + ETH_LEN + offsetof(struct ipv6hdr, hop_limit), &hops, 1, 0);
  } else if (a->flags & CANOPY_FP_DECREMENT_TTL) {
    /* TTL and protocol are one 16-bit word of the header checksum. */
    __u16 before = (__u16)(p->ttl << 8 | p->key.protocol);
    __u16 after = (__u16)((p->ttl - 1) << 8 | p->key.protocol);
    __u8 ttl = p->ttl - 1;
    bpf_l3_csum_replace(skb, at + ETH_LEN + offsetof(struct iphdr, check), bpf_htons(before),
                        bpf_htons(after), 2);
    bpf_skb_store_bytes(skb, at + ETH_LEN + offsetof(struct iphdr, ttl), &ttl, 1, 0);
  }
  return a->nat != 0 ? nat(skb, a, p, at + ETH_LEN) : 0;
}

/* A packet this program took but cannot carry after all, unchanged: into
 * its interface again, marked, for the agent's socket to read this time. */
static __always_inline int hand_back(struct __sk_buff* skb) {
  skb->mark = CANOPY_FP_MARK_TO_AGENT;
  count(CANOPY_FP_HANDED_BACK);
  return (int)bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

SEC("tc")
int canopy_tc_ingress(struct __sk_buff* skb) {
  if (skb->mark == CANOPY_FP_MARK_TO_AGENT) return TC_ACT_OK; /* handed back: the agent's */
  struct parsed p = {};
  struct canopy_fp_action* a = 0;
  struct canopy_fp_template* t = 0;
  int why = classify(skb, &p, &a, &t);
  if (why == MAKE) {
    /* (The socket filter left the SYN to this program: if it cannot make
     * the flows, the agent gets it back.) */
    a = make(&p, t);
    if (!a) return hand_back(skb);
  } else if (why != TAKE) {
    count((__u32)why);
    return TC_ACT_OK;
  }
  if (p.fin && !tell_fin(&p)) return hand_back(skb);
  __u32 inner = 0; /* where the frame's own headers now start */
  /* An uplink's tag off first (its VLAN network's frames leave untagged
   * or with the flow's own tag): nothing of it may leave with the frame. */
  if (skb->vlan_present && bpf_skb_vlan_pop(skb) < 0) return hand_back(skb);
  if (a->out == CANOPY_FP_ENCAP) {
    /* Room for the tunnel's headers first: a frame the kernel will not
     * encapsulate (one that came out of a tunnel here, forwarded by the VM,
     * still counts as encapsulated) goes back to the agent unchanged. */
    int room = encap_room(skb, a);
    if (room == -1) {
      /* No underlay: the flow's next packets are the agent's; it takes the
       * flow back. */
      a->flags |= CANOPY_FP_BROKEN;
      count(CANOPY_FP_NO_ROUTE);
      return hand_back(skb);
    }
    if (room < 0) return hand_back(skb);
    inner = (__u32)room;
  }
  if (rewrite(skb, a, &p, inner, a->out != CANOPY_FP_ENCAP) < 0) {
    count(CANOPY_FP_REDIRECT_FAIL);
    return TC_ACT_SHOT;
  }
  answered(a, &p);
  __sync_fetch_and_add(&a->packets, 1);
  __sync_fetch_and_add(&a->bytes, skb->len);
  a->last_used_ns = bpf_ktime_get_ns();
  if (a->out == CANOPY_FP_ENCAP) {
    int out = encap_headers(skb, a, p.key.family);
    if (out < 0) {
      count(CANOPY_FP_REDIRECT_FAIL);
      return TC_ACT_SHOT;
    }
    count(CANOPY_FP_HIT);
    return (int)bpf_redirect_neigh((__u32)out, 0, 0, 0);
  }
  if (a->vlan != 0 && bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), a->vlan) < 0) {
    count(CANOPY_FP_REDIRECT_FAIL);
    return TC_ACT_SHOT;
  }
  count(CANOPY_FP_HIT);
  long r = a->out == CANOPY_FP_REDIRECT_PEER ? bpf_redirect_peer(a->ifindex, 0)
                                             : bpf_redirect(a->ifindex, 0);
  if (r != TC_ACT_REDIRECT) {
    count(CANOPY_FP_REDIRECT_FAIL);
    return TC_ACT_SHOT;
  }
  return (int)r;
}

/* On the underlay interface: a tunnelled frame of an installed flow (by
 * the sending host, the VNI and the inner frame) leaves its outer headers
 * here and goes into its VM's namespace. Everything else goes on to the
 * host's stack and the agent's tunnel sockets. */
SEC("tc")
int canopy_tc_underlay(struct __sk_buff* skb) {
  __u32 zero = 0;
  struct canopy_fp_config* cfg = bpf_map_lookup_elem(&config, &zero);
  struct ethhdr eth;
  struct udphdr udp;
  __u8 tunnel[8];
  __u8 sender[16] = {}; /* the outer source address */
  __u8 outer_family;
  __u32 ip_len;
  if (!cfg || skb->vlan_present) return TC_ACT_OK;
  if (bpf_ktime_get_ns() > cfg->alive_until_ns) return TC_ACT_OK; /* no agent: the host's */
  if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0) return TC_ACT_OK;
  if (eth.h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, ETH_LEN, &ip, sizeof(ip)) < 0 || ip.version != 4 || ip.ihl != 5 ||
        (ip.frag_off & bpf_htons(IP_OFFSET_BITS)) || ip.protocol != IPPROTO_UDP) {
      return TC_ACT_OK;
    }
    __builtin_memcpy(sender, &ip.saddr, 4);
    outer_family = 4;
    ip_len = IP_LEN;
  } else if (eth.h_proto == bpf_htons(ETH_P_IPV6)) {
    /* (Extension headers, a fragment's among them, are the host's.) */
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, ETH_LEN, &ip6, sizeof(ip6)) < 0 || ip6.version != 6 ||
        ip6.nexthdr != IPPROTO_UDP) {
      return TC_ACT_OK;
    }
    __builtin_memcpy(sender, &ip6.saddr, 16);
    outer_family = 6;
    ip_len = IP6_LEN;
  } else {
    return TC_ACT_OK;
  }
  if (bpf_skb_load_bytes(skb, ETH_LEN + ip_len, &udp, sizeof(udp)) < 0) return TC_ACT_OK;
  const __u32 at = ETH_LEN + ip_len + sizeof(udp);
  if (bpf_skb_load_bytes(skb, at, tunnel, sizeof(tunnel)) < 0) return TC_ACT_OK;
  __u32 header_len = 8;
  if (udp.dest == cfg->geneve_port && cfg->geneve_port != 0) {
    /* Version 0, not a control message, an Ethernet frame inside. */
    if ((tunnel[0] >> 6) != 0 || (tunnel[1] & 0x80) || tunnel[2] != 0x65 || tunnel[3] != 0x58) {
      return TC_ACT_OK;
    }
    header_len += (__u32)(tunnel[0] & 0x3f) * 4;
  } else if (udp.dest == cfg->vxlan_port && cfg->vxlan_port != 0) {
    if (!(tunnel[0] & 0x08)) return TC_ACT_OK;
  } else {
    return TC_ACT_OK;
  }
  if (header_len > 64) return TC_ACT_OK;
  struct parsed p = {};
  int r = parse(skb, at + header_len, &p);
  if (r >= 0) {
    count((__u32)r);
    return TC_ACT_OK;
  }
  /* A GSO packet must be one inner frame (a peer's fast path sends a
   * guest's super-frame so): a run of datagrams sent at once (UDP_SEGMENT,
   * as agents send) is the stack's to cut, and the agent's to read. */
  if (skb->gso_size != 0 && p.ip_len != skb->len - (at + header_len) - ETH_LEN) {
    count(CANOPY_FP_SLOW);
    return TC_ACT_OK;
  }
  p.key.ifindex = skb->ifindex;
  __builtin_memcpy(p.key.tunnel_src, sender, 16);
  p.key.tunnel_family = outer_family;
  p.key.vni = (__u32)tunnel[4] << 16 | (__u32)tunnel[5] << 8 | tunnel[6];
  struct canopy_fp_action* a = 0;
  struct canopy_fp_template* t = 0;
  int why = decide(skb, &p, &a, &t);
  if (why == MAKE) {
    a = make(&p, t);
  }
  if (why != TAKE && why != MAKE) {
    count((__u32)why);
    return TC_ACT_OK;
  }
  if (!a || (p.fin && !tell_fin(&p))) {
    count(CANOPY_FP_HANDED_BACK);
    return TC_ACT_OK;
  }
  struct ethhdr inner;
  if (bpf_skb_load_bytes(skb, at + header_len, &inner, sizeof(inner)) < 0) return TC_ACT_OK;
  const __s32 outer = (__s32)(ip_len + sizeof(udp) + header_len + ETH_LEN);
  /* (The inner segments' size stays what it was; the inner packet's family,
   * where it is not the outer one's, is the skb's protocol from here on,
   * which a VM's stack goes by. A kernel without those flags (before 6.3)
   * refuses: the agent's then.) */
  __u64 decap = BPF_F_ADJ_ROOM_FIXED_GSO;
  if (p.key.family != outer_family) {
    decap |= p.key.family == 6 ? BPF_F_ADJ_ROOM_DECAP_L3_IPV6 : BPF_F_ADJ_ROOM_DECAP_L3_IPV4;
  }
  if (bpf_skb_adjust_room(skb, -outer, BPF_ADJ_ROOM_MAC, decap) < 0) {
    count(CANOPY_FP_REDIRECT_FAIL);
    return TC_ACT_OK;
  }
  if (bpf_skb_store_bytes(skb, 0, &inner, sizeof(inner), 0) < 0) return TC_ACT_SHOT;
  /* (A flow to a port takes the frame as it came; one to an uplink, from
   * a router's gateway here, is routed and translated.) */
  if (rewrite(skb, a, &p, 0, 1) < 0) {
    count(CANOPY_FP_REDIRECT_FAIL);
    return TC_ACT_SHOT;
  }
  answered(a, &p);
  __sync_fetch_and_add(&a->packets, 1);
  __sync_fetch_and_add(&a->bytes, skb->len);
  a->last_used_ns = bpf_ktime_get_ns();
  if (a->vlan != 0 && bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), a->vlan) < 0) {
    count(CANOPY_FP_REDIRECT_FAIL);
    return TC_ACT_SHOT;
  }
  count(CANOPY_FP_HIT);
  count(CANOPY_FP_TUNNEL_IN);
  return (int)(a->out == CANOPY_FP_REDIRECT_PEER ? bpf_redirect_peer(a->ifindex, 0)
                                                 : bpf_redirect(a->ifindex, 0));
}

/* On the agent's AF_PACKET socket of the same interface: the packets the
 * fast path leaves to it (the whole packet), not the ones it takes (0). */
SEC("socket")
int canopy_socket_filter(struct __sk_buff* skb) {
  if (skb->mark == CANOPY_FP_MARK_TO_AGENT) return (int)skb->len; /* handed back */
  struct parsed p = {};
  struct canopy_fp_action* a = 0;
  struct canopy_fp_template* t = 0;
  int why = classify(skb, &p, &a, &t);
  return why == TAKE || why == MAKE ? 0 : (int)skb->len;
}

char LICENSE[] SEC("license") = "GPL";
