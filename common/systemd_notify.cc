// See systemd_notify.h.
#include "common/systemd_notify.h"

#include <systemd/sd-daemon.h>

#include <string>

namespace llmgw {

void NotifyReady(std::string_view status) {
  std::string msg = "READY=1\nSTATUS=";
  msg += status;
  sd_notify(0, msg.c_str());
}

void NotifyStopping() { sd_notify(0, "STOPPING=1\nSTATUS=draining"); }

}  // namespace llmgw
