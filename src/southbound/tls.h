#pragma once
// Mutual TLS for the southbound: the server proves itself with its
// certificate, and each agent with a client certificate signed by the CA the
// server trusts, whose common name (or a DNS subject alternative name) must
// be the host name the agent says hello with. Without TLS files both ends
// speak plain gRPC (for a unix socket or loopback only).
//
//   auto creds = serverCredentials({.ca = "ca.pem", .cert = "server.pem", .key = "server.key"});
//   builder.AddListeningPort(address, *creds);
//   ...
//   if (!peerMayBe(*context, hello.host_name())) refuse();
//
// Thread-safety: pure functions.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "base/result.h"

namespace canopy::southbound {

struct TlsFiles {
  std::string ca{};    // PEM: the CA that signs the other end's certificate
  std::string cert{};  // PEM: this end's certificate chain
  std::string key{};   // PEM: its private key

  bool enabled() const { return !ca.empty() || !cert.empty() || !key.empty(); }
};

// Server: certificate and key are required; with a CA, agents must present
// a certificate it signed. InvalidArgument names a missing or unreadable file.
Result<std::shared_ptr<grpc::ServerCredentials>> serverCredentials(const TlsFiles& files);
// Agent: the CA that signed the server's certificate (required), and the
// agent's own certificate and key (both or neither).
Result<std::shared_ptr<grpc::ChannelCredentials>> channelCredentials(const TlsFiles& files);

// Whether the peer may speak for `host`: true on a connection without TLS;
// with TLS, the verified client certificate must name the host.
bool peerMayBe(const grpc::ServerContextBase& context, const std::string& host);

}  // namespace canopy::southbound
