#pragma once
// Port bindings (kinds/port_bindings.cc): what a binding to a host gives a
// port, and binding-extended's /v2.0/ports/<id>/bindings.

#include <string>

#include "api/kind.h"

namespace canopy::api::detail {

struct VifBinding {
  std::string vif_type;  // "bridge", "binding_failed" or "unbound"
  Json vif_details = Json::object();
};

// The binding of port `port_id` to `host` (empty: unbound) with
// `vnic_type`: model::kVifType with its bridge (model/port.h) on a host
// with a canopy-agent and a normal vnic; else binding_failed.
VifBinding bindingFor(const std::string& port_id, const std::string& host,
                      const std::string& vnic_type, const Transaction& ctx);

}  // namespace canopy::api::detail
