// Leader election of an HA fleet (fleet.etcd): every controller keeps a lease in etcd,
// registers itself under PREFIX/controllers/ID and campaigns for PREFIX/leader, a key
// created only if absent and attached to its lease. The holder leads (publishes to the
// agents); the others stand by with warm state and take over once the leader's lease
// lapses (it died or lost etcd). A leader that cannot renew its lease before it would
// lapse steps down on its own, so two controllers never both believe they lead for
// longer than one step. Agents read PREFIX/leader to find whom to attach to.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "controlplane/etcd_client.h"

namespace llmgw::cp {

struct ElectionOptions {
  std::string prefix = "/llmgw/";  // fleet.etcd.prefix
  std::string id;                  // this controller's name (unique in the fleet)
  std::string addr;                // its admin HOST:PORT, where agents attach
  uint32_t lease_ms = 3000;        // fleet.etcd.lease_ms
  std::function<uint64_t()> clock_ms;  // monotonic; default steady_clock
};

// What PREFIX/leader says: "ID ADDR".
struct LeaderRecord {
  std::string id, addr;
};
std::string LeaderKey(const std::string& prefix);
std::string EncodeLeader(const LeaderRecord& r);
bool DecodeLeader(const std::string& value, LeaderRecord* out);
// The current leader per etcd (agents use it to find whom to attach to); false when
// nobody leads or etcd cannot be asked (*why says which).
bool ReadLeader(EtcdKv* kv, const std::string& prefix, LeaderRecord* out, std::string* why);

class Election {
 public:
  Election(EtcdKv* kv, ElectionOptions o);
  // One round: renew or grant the lease, register, campaign or check the leadership.
  // Call every step_ms(). Blocks only on etcd calls (each bounded by the client).
  void Step();
  // Gives up leadership at once (deletes the key if it is ours, revokes the lease), so a
  // standby takes over without waiting for the lease to lapse. For a clean shutdown.
  void Resign();
  uint32_t step_ms() const;

  bool is_leader() const;
  LeaderRecord leader() const;       // as last seen; empty when unknown
  uint64_t leader_changes() const;   // times this controller gained or lost leadership
  std::string last_error() const;

  struct Member {
    std::string id, addr;
    bool leader = false;
    uint64_t registered_unix_ms = 0;
  };
  // Every registered controller (asks etcd).
  std::vector<Member> Members();

 private:
  void SetLeader(bool leading, const char* why);
  void Fail(const std::string& what, const Error& e);

  EtcdKv* kv_;
  ElectionOptions o_;
  int64_t lease_ = 0;
  uint64_t lease_deadline_ms_ = 0;  // our lease surely lapses no earlier than this
  uint64_t next_keepalive_ms_ = 0;
  bool registered_ = false;
  uint64_t registered_unix_ms_ = 0;
  mutable std::mutex mu_;  // guards the fields below (read by other threads)
  bool leader_ = false;
  LeaderRecord seen_;
  uint64_t changes_ = 0;
  std::string error_;
};

}  // namespace llmgw::cp
