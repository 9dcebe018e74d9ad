/* The kernel fast path's maps, as the eBPF programs (fastpath.bpf.c) and the
 * agent (fastpath/fast_path.h) both see them: plain C, fixed layouts, no
 * padding left implicit. Addresses and ports are in network byte order, as
 * they are in the packet. */
#ifndef CANOPY_FASTPATH_BPF_FASTPATH_H
#define CANOPY_FASTPATH_BPF_FASTPATH_H

#ifdef __cplusplus
#include <cstdint>
#define CANOPY_U8 std::uint8_t
#define CANOPY_U16 std::uint16_t
#define CANOPY_U32 std::uint32_t
#define CANOPY_U64 std::uint64_t
#else
#include <linux/types.h>
#define CANOPY_U8 __u8
#define CANOPY_U16 __u16
#define CANOPY_U32 __u32
#define CANOPY_U64 __u64
#endif

/* A flow the userspace datapath decided: the interface it came in on, its
 * Ethernet addresses and its IPv4 or IPv6 5-tuple; from a tunnel (on the
 * underlay interface), the sending host's tunnel address (IPv4 or IPv6,
 * as the underlay's) and the VNI too, and the inner frame's addresses. */
struct canopy_fp_key {
  CANOPY_U32 ifindex;
  CANOPY_U8 eth_src[6];
  CANOPY_U8 eth_dst[6];
  CANOPY_U8 ip_src[16]; /* IPv4: the first four bytes, the rest zero */
  CANOPY_U8 ip_dst[16];
  CANOPY_U16 port_src; /* ICMP/ICMPv6 echo: the identifier */
  CANOPY_U16 port_dst; /* ICMP/ICMPv6 echo: the type */
  CANOPY_U8 protocol;
  CANOPY_U8 family;         /* 4 or 6 */
  CANOPY_U16 vlan;          /* the 802.1Q VID it came with (an uplink's VLAN network); 0: none */
  CANOPY_U8 tunnel_src[16]; /* IPv4: the first four bytes, the rest zero */
  CANOPY_U32 vni;
  CANOPY_U8 tunnel_family; /* 4 or 6; 0: not from a tunnel */
  CANOPY_U8 reserved;
  /* A load balancer's template (map `templates`): its member's index in
   * the listener's members, plus one; 0 for every flow and other template. */
  CANOPY_U16 lb_member;
};

enum canopy_fp_out {
  CANOPY_FP_REDIRECT_PEER = 1, /* into the peer of veth `ifindex` (its namespace) */
  CANOPY_FP_REDIRECT = 2,      /* out of `ifindex` (a tap: to its reader; an uplink) */
  CANOPY_FP_ENCAP = 3,         /* into the tunnel: outer IPv4 (or IPv6), UDP and `header`, routed */
};

#define CANOPY_FP_MAX_HEADER 40 /* Geneve with Canopy's options, or VXLAN (8) */

enum canopy_fp_flags {
  CANOPY_FP_SET_ETH = 1,       /* eth_src/eth_dst rewritten */
  CANOPY_FP_DECREMENT_TTL = 2, /* routed: TTL - 1, checksum updated */
  CANOPY_FP_BROKEN = 4,        /* set by the program: its route failed (the agent takes it back) */
  CANOPY_FP_MADE = 8,       /* made by the program from a template: carries its SYN and SYN-ACK */
  CANOPY_FP_HASH_PORT = 16, /* a template's: the tunnel's UDP source port from the tuple */
  CANOPY_FP_FIN_TO_AGENT = 32, /* its FINs are the agent's (a stateful translation follows the
                                * connection's close: router SNAT) */
  CANOPY_FP_TUNNEL_IPV6 = 64,  /* CANOPY_FP_ENCAP: the underlay is IPv6 */
};

enum canopy_fp_nat {
  CANOPY_FP_NAT_IP_SRC = 1,
  CANOPY_FP_NAT_IP_DST = 2,
  CANOPY_FP_NAT_PORT_SRC = 4,
  CANOPY_FP_NAT_PORT_DST = 8,
};

/* What to do with it, and what it did (updated by the programs). */
struct canopy_fp_action {
  CANOPY_U32 ifindex;
  CANOPY_U8 out;   /* enum canopy_fp_out */
  CANOPY_U8 flags; /* enum canopy_fp_flags */
  CANOPY_U16 mtu;  /* larger IP packets (not GSO) go to the agent; 0: none */
  CANOPY_U8 eth_src[6];
  CANOPY_U8 eth_dst[6];
  /* CANOPY_FP_ENCAP: the outer addresses (IPv4: the first four bytes) and
   * ports, and the tunnel header (Geneve or VXLAN) as the agent would send
   * it. */
  CANOPY_U8 tunnel_src[16];
  CANOPY_U8 tunnel_dst[16];
  CANOPY_U16 udp_src;
  CANOPY_U16 udp_dst;
  CANOPY_U8 header_len;
  CANOPY_U8 nat;   /* enum canopy_fp_nat */
  CANOPY_U16 vlan; /* the 802.1Q VID it leaves with (out of an uplink); 0: none */
  CANOPY_U8 header[CANOPY_FP_MAX_HEADER];
  /* NAT (a floating IP, port forwarding, router SNAT, a local IP: IPv4; a
   * load balancer's: IPv4 or IPv6, the flow's family): what the fields
   * `nat` names become, checksums updated. IPv4: the first four bytes. */
  CANOPY_U8 nat_ip_src[16];
  CANOPY_U8 nat_ip_dst[16];
  CANOPY_U16 nat_port_src; /* TCP or UDP only */
  CANOPY_U16 nat_port_dst;
  CANOPY_U32 template_id; /* CANOPY_FP_MADE: the template it was made from */
  CANOPY_U32 budget_port; /* a made answer's: whose half-open count its SYN-ACK ends */
  CANOPY_U64 packets;
  CANOPY_U64 bytes;
  CANOPY_U64 last_used_ns; /* bpf_ktime_get_ns() of the last packet (made: of its making) */
};

/* A connection's flows, both ways, as the agent decided them for an earlier
 * connection between the same two ends to the same port: keyed by the
 * opener's flow with its source port 0 (security groups never match the
 * source port; nothing on such a flow translates it). The program makes a
 * new connection's two flows from it when its SYN comes (map `templates`). */
struct canopy_fp_template {
  struct canopy_fp_action forward; /* the opener's way */
  struct canopy_fp_key reply_key;  /* the answer's key, its port_dst then the opener's port */
  struct canopy_fp_action reply;
  CANOPY_U32 id;
  /* Not 0: a VIP's selector, which makes no flows itself: the table in
   * map `lb_tables` that picks a new connection's member; the template
   * made from is the one at the same key with that member's lb_member. */
  CANOPY_U32 lb_table;
  CANOPY_U64 made; /* connections made from it */
};

/* A listener's Maglev table as the datapath's (datapath/nat/maglev.h): a
 * new connection's member is members[hash % size], the hash Canopy's
 * stable one (FNV-1a, then splitmix64's finaliser) of the client's
 * address, then (unless source_only) the VIP's, the protocol and the two
 * ports in network order. A member is its index in the listener's
 * members; CANOPY_FP_LB_NONE: none. */
#define CANOPY_FP_LB_TABLE_MAX 4096 /* Maglev's sizes up to 4093 (40 members) */
#define CANOPY_FP_LB_NONE 0xffff
#define CANOPY_FP_MAX_LB_TABLES 256
struct canopy_fp_lb_table {
  CANOPY_U32 size;
  CANOPY_U8 source_only;
  CANOPY_U8 reserved[3];
  CANOPY_U16 members[CANOPY_FP_LB_TABLE_MAX];
};

/* Per-CPU counters, by index. */
enum canopy_fp_counter {
  CANOPY_FP_HIT = 0,
  CANOPY_FP_MISS,      /* no flow: to the agent */
  CANOPY_FP_SLOW,      /* a flow, but this packet is the agent's (TCP flags, TTL, size) */
  CANOPY_FP_NOT_IP,    /* not IPv4 or IPv6: to the agent */
  CANOPY_FP_MALFORMED, /* too short or bad header: to the agent, which names it */
  CANOPY_FP_REDIRECT_FAIL,
  CANOPY_FP_NO_ROUTE,         /* into the tunnel, but no route or neighbour: to the agent */
  CANOPY_FP_TUNNEL_IN,        /* decapsulated from a tunnel (counted with the hits too) */
  CANOPY_FP_HANDED_BACK,      /* could not be carried after all: given to the agent */
  CANOPY_FP_HEADLESS,         /* the agent gone too long: left to the host */
  CANOPY_FP_MADE_CONNECTIONS, /* connections whose flows the program made (from a template) */
  CANOPY_FP_MADE_LIMITED,     /* a port over its bound on them: its SYN to the agent */
  CANOPY_FP_COUNTERS
};

#define CANOPY_FP_MAX_FLOWS 65536
#define CANOPY_FP_MAX_TEMPLATES 8192

/* skb->mark of a packet the ingress program handed back to the agent (it
 * could not carry it after all, e.g. a frame a tunnel brought that a VM
 * forwards, which the kernel will not encapsulate twice): it enters its
 * interface again, and both programs leave it to the agent. A packet from a
 * VM's namespace has no mark (crossing namespaces clears it). */
#define CANOPY_FP_MARK_TO_AGENT 0x63fa57u

/* The underlay program's settings (array map "config", index 0): the UDP
 * ports its tunnels arrive on, in network byte order. */
struct canopy_fp_config {
  CANOPY_U16 geneve_port;
  CANOPY_U16 vxlan_port;
  CANOPY_U32 underlay_ifindex; /* where the tunnels leave (the route's device is asked) */
  /* The agent's sign of life, renewed each second: until this
   * bpf_ktime_get_ns() time the programs carry installed flows; after it
   * (the agent gone for longer than its --fast-path-headless) they leave
   * every packet to the host, as if no flow were installed. */
  CANOPY_U64 alive_until_ns;
  /* How many connections a port may have made from templates that wait
   * for their answer (SYN-ACK), counted over windows of
   * CANOPY_FP_HALF_OPEN_WINDOW_NS (the agent takes unanswered ones out
   * within one); 0: no bound. */
  CANOPY_U32 half_open;
  CANOPY_U32 reserved;
};

#define CANOPY_FP_HALF_OPEN_WINDOW_NS 5000000000ull

/* What the programs tell the agent (ring buffer "events"): a TCP FIN an
 * installed flow carried, for conntrack to follow the connection's close
 * (the agent takes its flows back once both sides have sent one). */
struct canopy_fp_event {
  struct canopy_fp_key key; /* the flow that carried it */
  CANOPY_U8 tcp_flags;
  CANOPY_U8 reserved[7];
};

#define CANOPY_FP_EVENTS_SIZE (1u << 20)
/* The agent is woken once this much waits (it also takes what waits each
 * time it wakes for anything else): events come in batches, not one
 * wake-up each. */
#define CANOPY_FP_EVENTS_WAKE (16u << 10)

/* A port's half-open connections made in the kernel (map "budgets", by
 * its interface). */
struct canopy_fp_budget {
  CANOPY_U64 window_ns; /* when its window began */
  CANOPY_U64 half_open;
};

#endif
