#pragma once
// Port bindings (kinds/port_bindings.cc): what a binding to a host gives a
// port, and binding-extended's /v2.0/ports/<id>/bindings.

#include <string>

#include "api/kind.h"

namespace canopy::api::detail {

struct VifBinding {
  std::string vif_type;  // "tap", "binding_failed" or "unbound"
  Json vif_details = Json::object();
};

// The binding of a port to `host` (empty: unbound) with `vnic_type`: "tap"
// (a libvirt ethernet interface on "tap" + 11 characters of the port id,
// which nova-compute creates and the host's canopy-agent attaches to) on a
// host with a canopy-agent and a normal vnic; else binding_failed.
VifBinding bindingFor(const std::string& host, const std::string& vnic_type,
                      const Transaction& ctx);

}  // namespace canopy::api::detail
