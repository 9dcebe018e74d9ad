#pragma once
// Neutron's security groups and their rules: attribute maps, the rule checks
// that need no I/O (direction, ethertype, protocol, port ranges, ICMP
// type/code, remote prefix versus remote group), the key that makes two rules
// duplicates, and the rules of a project's default group.

#include <string>
#include <vector>

#include "model/attributes.h"

namespace canopy::model {

const ResourceSpec& securityGroupSpec();
const ResourceSpec& securityGroupRuleSpec();
// Address groups: sets of CIDRs a rule names as remote_address_group_id.
const ResourceSpec& addressGroupSpec();
// An address group's addresses as Neutron stores them: each CIDR's
// network, no duplicates, in the given order.
Json normalizeAddresses(const Json& addresses);

// Checks a validated rule and normalises it (protocol names lower case,
// remote_ip_prefix to its network).
Result<void> checkRule(Json& rule);

// What makes two rules the same rule (Neutron refuses the second with 409).
std::string ruleIdentity(const Json& rule);

// The default group's rules, without ids or stamps: egress anything for IPv4
// and IPv6, ingress from members of the group itself.
std::vector<Json> defaultGroupRules(const std::string& group_id);

}  // namespace canopy::model
