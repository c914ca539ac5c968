// The live web dashboard llmcd serves on admin.metrics_listen (docs/OPERATIONS.md,
// "Dashboard"): one self-contained HTML page (no build step, no external assets; charts
// drawn by hand on canvas) at GET /dashboard, fed by a server-sent event stream at
// GET /dashboard/events that pushes the state below twice a second. This file has the
// parts that need no HTTP server: the page, the state as JSON, and the token check.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "controlplane/controller.h"

namespace llmgw::cp {

// The page, embedded in the binary.
std::string_view DashboardPage();

// One state event: gateway status, per-backend state and signals (observed and scraped
// kept apart), breakers, routing picks and cumulative counters (the page turns counters
// into rates between two events, so the server keeps no per-viewer state).
std::string DashboardStateJson(const Controller& c, uint64_t unix_ms);

// True when an HTTP request may see the dashboard: always when `token` is empty, else
// when it carries the token as `Authorization: Bearer <token>`, as the cookie
// `llmgw_admin_token`, or as `?token=` in the query (a browser opening the page; the page
// then keeps it in the cookie so its EventSource, which cannot set headers, sends it).
// Compares in constant time.
bool DashboardAuthorized(std::string_view authorization, std::string_view cookie_header, std::string_view query,
                         std::string_view token);

// The value of `name` in a query string (`a=1&token=x`), percent-decoded; empty when absent.
std::string QueryParam(std::string_view query, std::string_view name);

}  // namespace llmgw::cp
