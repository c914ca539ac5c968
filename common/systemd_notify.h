// The systemd readiness protocol (sd_notify from libsystemd) for Type=notify units:
// llmgw says READY=1 once its listeners are bound and its workers run, llmcd once its
// admin API and /metrics listen and the first snapshot is published; both say
// STOPPING=1 when they start to drain. Outside systemd (no $NOTIFY_SOCKET) every call
// is a no-op, so the binaries behave the same from a shell, a container or a test.
#pragma once

#include <string_view>

namespace llmgw {

// READY=1 plus a STATUS= line shown by `systemctl status`.
void NotifyReady(std::string_view status);
void NotifyStopping();

}  // namespace llmgw
