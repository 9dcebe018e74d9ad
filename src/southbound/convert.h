#pragma once
// Host views on the wire: a whole snapshot, the changes between two views,
// and applying what arrives to the view an agent holds. Applying checks
// every address's length and every key, so a bad message is refused with a
// reason (the agent's NACK), never half-applied.
//
//   pb::View full = toSnapshot(view, version);
//   pb::View delta = toDelta(before, after, version, before_version);
//   pb::View delta = toDelta(view, changed_keys, version, base_version);
//   ViewKeys keys = differences(view, hello.held());   // what an agent lacks
//   if (auto r = apply(held, message); !r) nack(r.error().message());
//
// Thread-safety: pure functions.

#include <cstdint>

#include "base/result.h"
#include "proto/southbound.pb.h"
#include "southbound/host_view.h"

namespace canopy::southbound {

namespace pb = ::canopy::southbound::v1;

pb::View toSnapshot(const HostView& view, uint64_t version);
// What turns `before` into `after`; base_version names the view it applies to.
pb::View toDelta(const HostView& before, const HostView& after, uint64_t version,
                 uint64_t base_version);
// The objects `changed` names, as `view` holds them now (or removed).
pb::View toDelta(const HostView& view, const ViewKeys& changed, uint64_t version,
                 uint64_t base_version);
bool isEmptyDelta(const pb::View& delta);

// Each object of `view` by a 64-bit digest of its wire form: what an agent
// says it holds when it resumes (Hello.held).
pb::ViewDigest digest(const HostView& view);
// The objects in which `view` and what `held` describes differ (changed,
// added, or held but no longer in `view`).
ViewKeys differences(const HostView& view, const pb::ViewDigest& held);

// Applies a snapshot (replacing `view`) or a delta (on top of it). On error
// `view` is unchanged.
Result<void> apply(HostView& view, const pb::View& message);

}  // namespace canopy::southbound
