// store::open(): a backend chosen by the URL's scheme. The interface
// (store.h) names no backend; each backend is one line of the table below.

#include <string>

#include "store/etcd_store.h"
#include "store/sqlite_store.h"
#include "store/store.h"

namespace canopy::store {
namespace {

using Opener = Result<std::unique_ptr<Store>> (*)(std::string_view rest, bool create_if_missing);

Result<std::unique_ptr<Store>> openSqlite(std::string_view path, bool create_if_missing) {
  return SqliteStore::open({.path = std::string(path), .create_if_missing = create_if_missing});
}

Result<std::unique_ptr<Store>> openEtcd(std::string_view endpoints, bool /*create_if_missing*/) {
  auto options = EtcdStore::parse(endpoints);
  if (!options) return std::move(options).error();
  return EtcdStore::open(*options);
}

struct Backend {
  std::string_view scheme;
  Opener open;
};

// The backends this build has, by scheme ("sqlite:PATH", "etcd://HOST:PORT,...").
constexpr Backend kBackends[] = {
    {"sqlite", openSqlite},
    {"etcd", openEtcd},
};

}  // namespace

Result<std::unique_ptr<Store>> open(std::string_view url, bool create_if_missing) {
  auto colon = url.find(':');
  auto slash = url.find('/');
  // A bare path (no scheme before its first slash) is the embedded store.
  if (colon == std::string_view::npos || (slash != std::string_view::npos && slash < colon)) {
    return openSqlite(url, create_if_missing);
  }
  std::string_view scheme = url.substr(0, colon);
  for (const Backend& b : kBackends) {
    if (b.scheme == scheme) return b.open(url.substr(colon + 1), create_if_missing);
  }
  std::string known;
  for (const Backend& b : kBackends) known += (known.empty() ? "" : ", ") + std::string(b.scheme);
  return Error(Errc::InvalidArgument, "unknown store URL '" + std::string(url) + "': the scheme '" +
                                          std::string(scheme) + "' is not one of " + known +
                                          " (sqlite:PATH, etcd://HOST:PORT[,HOST:PORT...])");
}

}  // namespace canopy::store
