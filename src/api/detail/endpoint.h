#pragma once
// What the API's handlers share beyond the kinds: responses in Neutron's
// shape, the checks before a write to a document (visible, changeable,
// If-Match), the writer (the model's writer path stamped with the server's
// clock), and the endpoints that are not a kind's CRUD: tags (tags.cc),
// quotas (quotas.cc) and agents (agents.cc).
//
// Thread-safety: the functions may be called from many threads at once.

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "api/kind.h"
#include "api/neutron_api.h"
#include "base/clock.h"

namespace canopy::api::detail {

// One write through the model's writer path, stamped with the server's clock.
struct ApiWriter {
  state::ModelState& state;
  const Clock& clock;

  Result<void> write(const Caller& caller, const state::ModelState::Build& build) const {
    auto r = state.write({.caller = caller, .now = state::timestamp(clock.wallNow())}, build);
    if (!r) return std::move(r).error();
    return ok();
  }
};

HttpResponse json(int status, const Json& body);
HttpResponse unknownPath(const HttpRequest& req);
HttpResponse methodNotAllowed();
// Own project, or admin.
bool canChange(const Json& doc, const Caller& caller);
// If-Match: revision_number=N (several may be given, comma-separated).
Result<void> checkIfMatch(const HttpRequest& req, const Json& doc);
// 204 No Content.
HttpResponse noContent();
// The fields a GET's ?fields= names, of `view` (all when it names none).
Json selectFields(const Json& view, const HttpRequest& req);
// Children kept in their parent's document (a router's conntrack helpers,
// a QoS policy's rules, a floating IP's port forwardings): a body's
// attribute that is none of the child's own. project_id and tenant_id pass
// on create (the parent's project owns the child); read-only and unknown
// ones are refused as Neutron words it.
Result<void> checkOtherAttribute(const std::string& key, const Json& value, bool create,
                                 std::initializer_list<std::string_view> read_only);
// Writes a parent whose children changed: its revision and updated_at move,
// guarded by the revision it was read at.
void putParent(Transaction& ctx, std::string_view collection, const std::string& id, Json doc,
               store::Revision read);

// The visible, changeable document with this id, or the error to answer.
Result<const state::Document*> target(const ResourceKind& kind, const std::string& id,
                                      Transaction& ctx, const HttpRequest& req, const char* verb);

// standard-attr-tag: /v2.0/<collection>/<id>/tags[/<tag>].
HttpResponse serveTags(const ApiWriter& w, const ResourceKind& kind, const std::string& id,
                       const std::string* tag, const HttpRequest& req, const Caller& caller);
// /v2.0/agents[/<host>], admin only.
HttpResponse serveAgents(const ApiWriter& w, const std::vector<std::string>& parts,
                         const HttpRequest& req, const Caller& caller);
// /v2.0/networks/<id>/dhcp-agents (admin): the agents answering its DHCP,
// those of the hosts its ports are bound to.
HttpResponse serveNetworkDhcpAgents(const ApiWriter& w, const std::string& network,
                                    const HttpRequest& req, const Caller& caller);
// /v2.0/flavors/<id>/service_profiles[/<profile>] (admin): a flavor's
// profiles, bound (POST), shown and unbound (DELETE) (kinds/flavor.cc).
HttpResponse serveFlavorProfiles(const ApiWriter& w, const ResourceKind& flavors,
                                 const std::vector<std::string>& parts, const HttpRequest& req,
                                 const Caller& caller);
// /v2.0/local_ips/<id>/port_associations[/<port>]: a local IP's ports
// (kinds/local_ip.cc).
HttpResponse serveLocalIpAssociations(const ApiWriter& w, const ResourceKind& local_ips,
                                      const std::vector<std::string>& parts, const HttpRequest& req,
                                      const Caller& caller);
// /v2.0/routers/<id>/conntrack_helpers[/<helper>]: a router's NAT
// helpers, kept in its document (kinds/conntrack_helper.cc).
HttpResponse serveConntrackHelpers(const ApiWriter& w, const ResourceKind& routers,
                                   const std::vector<std::string>& parts, const HttpRequest& req,
                                   const Caller& caller);
// binding-extended: /v2.0/ports/<id>/bindings[/<host>[/activate]] (admin;
// kinds/port_bindings.cc).
HttpResponse servePortBindings(const ApiWriter& w, const ResourceKind& ports,
                               const std::vector<std::string>& parts, const HttpRequest& req,
                               const Caller& caller);
// A router's conntrack_helpers as its view shows them (no ids).
Json routerHelpersView(const Json& router);
// /v2.0/floatingip-pools: the subnets floating IPs come from.
HttpResponse serveFloatingIpPools(const ApiWriter& w, const std::vector<std::string>& parts,
                                  const HttpRequest& req);
// /v2.0/quotas[/<project>[/default|/details]].
HttpResponse serveQuotas(const ApiWriter& w, const std::vector<std::string>& parts,
                         const HttpRequest& req, const Caller& caller);

}  // namespace canopy::api::detail
