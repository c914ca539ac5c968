// The Controller's plain views (controller_views.h) as llmgw.admin.v1 messages: the one
// place the control plane's state meets the admin API's wire types.
#pragma once

#include <vector>

#include "controlplane/controller_views.h"
#include "llmgw/admin/v1/admin.pb.h"

namespace llmgw::cp {

admin::v1::BackendState ToProto(shm::BackendState s);
admin::v1::Backend ToProto(const BackendView& b);
std::vector<admin::v1::Backend> ToProto(const std::vector<BackendView>& bs);
admin::v1::GetStatusResponse ToProto(const StatusView& s);
admin::v1::GetConfigResponse ToProto(const ConfigText& c);
admin::v1::GetRoutingStatsResponse ToProto(const RoutingStatsView& r);
admin::v1::ApiKey ToProto(const KeyView& k);
admin::v1::ListKeysResponse ToProto(const KeysView& k);

}  // namespace llmgw::cp
