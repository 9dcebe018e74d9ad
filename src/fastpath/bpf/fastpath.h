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
#define CANOPY_U8 __u8
#define CANOPY_U16 __u16
#define CANOPY_U32 __u32
#define CANOPY_U64 __u64
#endif

/* A flow the userspace datapath decided: the interface it came in on, its
 * Ethernet addresses and its IPv4 5-tuple. */
struct canopy_fp_key {
  CANOPY_U32 ifindex;
  CANOPY_U8 eth_src[6];
  CANOPY_U8 eth_dst[6];
  CANOPY_U32 ip_src;
  CANOPY_U32 ip_dst;
  CANOPY_U16 port_src; /* ICMP echo: the identifier */
  CANOPY_U16 port_dst; /* ICMP echo: the type */
  CANOPY_U8 protocol;
  CANOPY_U8 pad[3];
};

enum canopy_fp_out {
  CANOPY_FP_REDIRECT_PEER = 1, /* into the peer of veth `ifindex` (its namespace) */
  CANOPY_FP_REDIRECT = 2,      /* out of `ifindex` (a tap: to its reader) */
};

enum canopy_fp_flags {
  CANOPY_FP_SET_ETH = 1,       /* eth_src/eth_dst rewritten */
  CANOPY_FP_DECREMENT_TTL = 2, /* routed: TTL - 1, checksum updated */
};

/* What to do with it, and what it did (updated by the programs). */
struct canopy_fp_action {
  CANOPY_U32 ifindex;
  CANOPY_U8 out;   /* enum canopy_fp_out */
  CANOPY_U8 flags; /* enum canopy_fp_flags */
  CANOPY_U16 mtu;  /* larger IP packets (not GSO) go to the agent; 0: none */
  CANOPY_U8 eth_src[6];
  CANOPY_U8 eth_dst[6];
  CANOPY_U64 packets;
  CANOPY_U64 bytes;
  CANOPY_U64 last_used_ns; /* bpf_ktime_get_ns() of the last packet */
};

/* Per-CPU counters, by index. */
enum canopy_fp_counter {
  CANOPY_FP_HIT = 0,
  CANOPY_FP_MISS,         /* no flow: to the agent */
  CANOPY_FP_SLOW,         /* a flow, but this packet is the agent's (TCP flags, TTL, size) */
  CANOPY_FP_NOT_IPV4,     /* to the agent */
  CANOPY_FP_MALFORMED,    /* too short or bad header: to the agent, which names it */
  CANOPY_FP_REDIRECT_FAIL,
  CANOPY_FP_COUNTERS
};

#define CANOPY_FP_MAX_FLOWS 65536

#endif
