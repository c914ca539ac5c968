// Building blocks of llmcd's Prometheus exposition shared by the scrape-time collector
// (metrics_exporter.cc) and the data-plane stat families (metrics_families.cc): a family,
// a counter or gauge sample, a histogram sample from the shm buckets, a backend state's name.
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <string_view>
#include <vector>

#include "common/shm.h"
#include "llmgw/admin/v1/admin.pb.h"

namespace llmgw::cp {

std::string_view StateName(::llmgw::admin::v1::BackendState s);
prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type);
prometheus::ClientMetric Value(prometheus::MetricType type, double v,
                               std::vector<prometheus::ClientMetric::Label> labels = {});
prometheus::ClientMetric Hist(const shm::HistogramTotals& h);

}  // namespace llmgw::cp
