#include "southbound/tls.h"

#include <fstream>
#include <sstream>

namespace canopy::southbound {
namespace {

Result<std::string> readPem(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return Error(Errc::InvalidArgument, std::string("cannot read the ") + what + " " + path);
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return Error(Errc::InvalidArgument, std::string("the ") + what + " " + path + " is not PEM");
  }
  return text.str();
}

}  // namespace

Result<std::shared_ptr<grpc::ServerCredentials>> serverCredentials(const TlsFiles& files) {
  if (files.cert.empty() || files.key.empty()) {
    return Error(Errc::InvalidArgument, "southbound TLS needs a certificate and its key");
  }
  auto cert = readPem(files.cert, "certificate");
  if (!cert) return std::move(cert).error();
  auto key = readPem(files.key, "key");
  if (!key) return std::move(key).error();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (!files.ca.empty()) {
    auto ca = readPem(files.ca, "CA certificate");
    if (!ca) return std::move(ca).error();
    options.pem_root_certs = *ca;
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

Result<std::shared_ptr<grpc::ChannelCredentials>> channelCredentials(const TlsFiles& files) {
  if (files.ca.empty()) {
    return Error(Errc::InvalidArgument, "southbound TLS needs the CA that signed the server");
  }
  if (files.cert.empty() != files.key.empty()) {
    return Error(Errc::InvalidArgument,
                 "a client certificate needs its key, and a key its certificate");
  }
  grpc::SslCredentialsOptions options;
  auto ca = readPem(files.ca, "CA certificate");
  if (!ca) return std::move(ca).error();
  options.pem_root_certs = *ca;
  if (!files.cert.empty()) {
    auto cert = readPem(files.cert, "certificate");
    if (!cert) return std::move(cert).error();
    auto key = readPem(files.key, "key");
    if (!key) return std::move(key).error();
    options.pem_cert_chain = *cert;
    options.pem_private_key = *key;
  }
  return grpc::SslCredentials(options);
}

bool peerMayBe(const grpc::ServerContextBase& context, const std::string& host) {
  auto auth = context.auth_context();
  // Without TLS, or without client certificates, there is nothing to check.
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return true;
  for (const char* property : {"x509_common_name", "x509_subject_alternative_name"}) {
    for (const auto& name : auth->FindPropertyValues(property)) {
      if (std::string(name.data(), name.size()) == host) return true;
    }
  }
  return false;
}

}  // namespace canopy::southbound
