#pragma once
// The etcd backend: the store on an etcd v3 cluster, so that several
// canopy-server replicas share one model. It speaks etcd's gRPC API (KV,
// Watch, Lease), generated at build time from the .proto files of etcd's own
// sources: keys and values travel as bytes (the JSON gateway would base64
// them), watches and lease renewals are native streams, and the transport is
// the gRPC the southbound already uses.
//
//   auto store = store::open("etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379");
//
// Every revision, compare and watch is etcd's own: the semantics of store.h
// hold because they are etcd's (the store's tests run against both backends).
// The endpoints are tried in turn: a call moves to the next member when one
// cannot be reached or has no leader, reads are retried there, and a write
// whose outcome became unknown (the member died while it was in flight) is
// reported as Unavailable, never retried blindly. A watch whose stream breaks
// resumes on another member from the revision after the last it delivered;
// one that fell behind a compaction reports Compacted.
//
// etcd's limits apply: a transaction of more than --max-txn-ops operations
// (default 128) or a request over --max-request-bytes is refused with a
// message naming the flag; run etcd with --max-txn-ops 10000 (docs/CLUSTER.md).
//
// Keys outside Canopy's prefixes are never read or written, so an etcd may be
// shared with other applications. The layout version is kept at
// /canopy/layout: a newer one is refused at open.
//
// Thread-safety: as Store.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace canopy::store {

struct EtcdOptions {
  std::vector<std::string> endpoints;  // HOST:PORT, tried in turn
  // How long one member may take to accept a connection before the next is tried.
  std::chrono::milliseconds connect_timeout{1500};
  // How long one call may take, every member and retry included.
  std::chrono::milliseconds request_timeout{15000};
};

class EtcdStore {
 public:
  // The version of Canopy's key layout in etcd that this build writes.
  static constexpr int kLayoutVersion = 1;
  static constexpr std::string_view kLayoutKey = "/canopy/layout";

  // "HOST:PORT[,HOST:PORT...]" (what follows "etcd://").
  static Result<EtcdOptions> parse(std::string_view endpoints);
  // Connects (Unavailable if no endpoint answers in time) and checks the
  // layout version.
  static Result<std::unique_ptr<Store>> open(const EtcdOptions& options);
};

}  // namespace canopy::store
