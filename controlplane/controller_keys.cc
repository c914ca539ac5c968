// Controller: client API keys as llmctl sees them (ListKeys with each key's use against
// its limits) and the edits of auth.keys_file behind `llmctl keys add|revoke`. The secret
// of a new key is made here, returned once and forgotten: only its SHA-256 is written.
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/config_keys.h"
#include "common/log.h"
#include "common/sha256.h"
#include "controlplane/controller.h"
#include "controlplane/controller_internal.h"

namespace llmgw::cp {

namespace {

constexpr uint64_t kUsageWindowMs = 60000;

// "sk-llmgw-" and 43 characters of base64url: 256 random bits from the kernel.
bool NewSecret(std::string* out) {
  uint8_t raw[32];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    got += static_cast<size_t>(n);
  }
  static constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string s = "sk-llmgw-";
  uint32_t acc = 0;
  int bits = 0;
  for (uint8_t b : raw) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      s += kB64[(acc >> bits) & 63];
    }
  }
  if (bits > 0) s += kB64[(acc << (6 - bits)) & 63];
  *out = std::move(s);
  return true;
}

bool ReadFile(const std::string& path, std::string* out, std::string* why) {
  std::ifstream in(path);
  if (!in) {
    *why = path + ": cannot read: " + std::strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Replaces path with text atomically (temp file in the same folder, fsync, rename), keeping
// the old file's mode, so llmcd (or an editor) never reads half a keys file.
bool WriteFileAtomic(const std::string& path, const std::string& text, std::string* why) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  mode_t mode = 0640;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 07777;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    *why = tmp + ": " + std::strerror(errno);
    return false;
  }
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *why = tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *why = path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

KeyEditResult Fail(KeyEditResult::Code code, std::string why) {
  KeyEditResult r;
  r.code = code;
  r.error = std::move(why);
  return r;
}

}  // namespace

Controller::KeyUse Controller::FleetKeyUse(shm::LimitKind kind, uint32_t slot) const {
  KeyUse u;
  uint32_t index = shm::LimiterIndex(kind, slot);
  if (!stats_.limiters.empty()) {
    u.spent = stats_.limiters[index].spent;
    u.denied = stats_.limiters[index].denied;
    u.checked = stats_.limiters[index].checked;
  }
  uint64_t identity = slot < base_->num_keys ? base_->keys[slot].id_hash : 0;
  for (const auto& [name, use] : agent_limiter_use_)
    for (const HostUse& h : use)
      if (h.limiter == index && h.identity == identity) {
        u.spent += h.spent;
        u.denied += h.denied;
        u.checked += h.checked;
      }
  return u;
}

void Controller::ReportLimiterUse(const std::string& name, std::vector<HostUse> use) {
  std::lock_guard<std::mutex> l(mu_);
  agent_limiter_use_[name] = std::move(use);
}

void Controller::UpdateKeyUsage(uint64_t now) {
  if (!key_usage_.empty() && now - key_usage_.back().ms < 1000) return;
  if (stats_.limiters.empty() && agent_limiter_use_.empty()) return;
  KeyUsageSample s;
  s.ms = now;
  s.by_slot.resize(shm::kMaxKeys);
  for (uint32_t k = 0; k < shm::kMaxKeys; ++k)
    s.by_slot[k] = {FleetKeyUse(shm::LimitKind::kKeyRpm, k).spent, FleetKeyUse(shm::LimitKind::kKeyTpm, k).spent};
  key_usage_.push_back(std::move(s));
  while (key_usage_.size() > 2 && now - key_usage_[1].ms >= kUsageWindowMs) key_usage_.pop_front();
}

KeyView Controller::MakeKeyView(const KeyConfig& k) const {
  KeyView v;
  v.id = k.id;
  v.models = k.models;
  v.priority = k.priority;
  v.rpm = k.limits.rpm;
  v.tpm = k.limits.tpm;
  v.max_concurrent = k.limits.max_concurrent;
  v.source = k.source;
  v.in_keys_file = !cfg_.keys_file_path.empty() && k.source == cfg_.keys_file_path;
  v.key_sha256_prefix = k.key_sha256.substr(0, 12);
  int slot = -1;
  for (uint32_t i = 0; i < base_->num_keys; ++i)
    if (base_->keys[i].present && k.id == base_->keys[i].id) slot = static_cast<int>(i);
  if (slot < 0 || (stats_.limiters.empty() && agent_limiter_use_.empty())) return v;
  // The whole fleet's use: this host's threads and every agent's last report.
  auto at = [&](shm::LimitKind kind) { return FleetKeyUse(kind, static_cast<uint32_t>(slot)); };
  v.in_flight = at(shm::LimitKind::kKeyConcurrency).spent;
  // Every request of the key is counted on its rpm limiter (limited or not).
  v.requests_total = at(shm::LimitKind::kKeyRpm).checked;
  v.rejected_total = at(shm::LimitKind::kKeyRpm).denied + at(shm::LimitKind::kKeyTpm).denied +
                     at(shm::LimitKind::kKeyConcurrency).denied;
  if (key_usage_.size() >= 2) {
    const auto& a = key_usage_.front().by_slot[static_cast<size_t>(slot)];
    const auto& b = key_usage_.back().by_slot[static_cast<size_t>(slot)];
    // What was taken within the samples' window (the last 60 s once llmcd has run that long).
    v.requests_last_minute = static_cast<double>(b.first >= a.first ? b.first - a.first : 0);
    v.tokens_last_minute = static_cast<double>(b.second >= a.second ? b.second - a.second : 0);
  }
  return v;
}

std::string Controller::KeysFilePath() const {
  std::lock_guard<std::mutex> l(mu_);
  return cfg_.keys_file_path;
}

void Controller::CopyConfiguredSnapshot(shm::Snapshot* out) const {
  std::memset(static_cast<void*>(out), 0, sizeof(shm::Snapshot));
  std::lock_guard<std::mutex> l(mu_);
  std::memcpy(static_cast<void*>(out), base_.get(), offsetof(shm::Snapshot, limits));
  shm::ForEachUsedRange(*base_, [&](size_t off, size_t len) {
    std::memcpy(reinterpret_cast<char*>(out) + off, reinterpret_cast<const char*>(base_.get()) + off, len);
  });
}

KeysView Controller::ListKeys() const {
  std::lock_guard<std::mutex> l(mu_);
  KeysView out;
  out.auth_required = cfg_.auth.required;
  out.keys_file = cfg_.keys_file_path;
  for (const auto& k : cfg_.keys) out.keys.push_back(MakeKeyView(k));
  return out;
}

KeyEditResult Controller::AddKey(const KeyConfig& req) {
  std::lock_guard<std::mutex> edit(keys_edit_mu_);
  Config cfg = CurrentConfig();
  if (cfg.keys_file_path.empty())
    return Fail(KeyEditResult::kPrecondition,
                "auth.keys_file is not set in " + cfg.source_file + "; set it (llmctl keys add writes there) or add the key to keys: by hand");
  for (const auto& k : cfg.keys)
    if (k.id == req.id) return Fail(KeyEditResult::kExists, "key '" + req.id + "' exists (in " + k.source + ")");

  std::string old_text, why;
  if (!ReadFile(cfg.keys_file_path, &old_text, &why)) return Fail(KeyEditResult::kPrecondition, why);
  std::vector<KeyConfig> keys;
  auto errors = ParseKeysFile(old_text, cfg.keys_file_path, cfg, &keys);
  if (!errors.empty()) return Fail(KeyEditResult::kPrecondition, "fix the keys file first: " + errors[0].ToString());

  KeyConfig k = req;
  std::string secret;
  if (!NewSecret(&secret)) return Fail(KeyEditResult::kFailed, std::string("getrandom: ") + std::strerror(errno));
  k.key_sha256 = Sha256Hex(secret);
  keys.push_back(k);
  // The new file is checked like llmcd will read it (id, models, priority), before it is written.
  std::string text = RenderKeysFile(keys);
  std::vector<KeyConfig> check;
  errors = ParseKeysFile(text, cfg.keys_file_path, cfg, &check);
  if (!errors.empty()) {
    std::string msg = errors[0].message;
    std::string key = errors[0].key;
    size_t dot = key.find("].");
    return Fail(KeyEditResult::kInvalid, (dot == std::string::npos ? key : key.substr(dot + 2)) + ": " + msg);
  }
  if (!WriteFileAtomic(cfg.keys_file_path, text, &why)) return Fail(KeyEditResult::kFailed, why);
  ReloadOutcome o = ReloadFromFile();
  if (!o.ok) {
    WriteFileAtomic(cfg.keys_file_path, old_text, &why);
    return Fail(KeyEditResult::kFailed, "reload refused the new key: " + (o.errors.empty() ? "" : o.errors[0]));
  }
  LOG_INFO("API key added", {{"key", k.id}, {"keys_file", cfg.keys_file_path}});
  KeyEditResult r;
  r.secret = std::move(secret);
  r.config_version = o.version;
  std::lock_guard<std::mutex> l(mu_);
  k.source = cfg.keys_file_path;
  for (const auto& kk : cfg_.keys)
    if (kk.id == k.id) k = kk;
  r.key = MakeKeyView(k);
  return r;
}

KeyEditResult Controller::RevokeKey(const std::string& id) {
  std::lock_guard<std::mutex> edit(keys_edit_mu_);
  Config cfg = CurrentConfig();
  const KeyConfig* found = nullptr;
  for (const auto& k : cfg.keys)
    if (k.id == id) found = &k;
  if (!found) return Fail(KeyEditResult::kNotFound, "no key '" + id + "'");
  if (cfg.keys_file_path.empty() || found->source != cfg.keys_file_path)
    return Fail(KeyEditResult::kPrecondition, "key '" + id + "' is defined in " + found->source + ":" +
                                                  std::to_string(found->line) + "; remove it there and reload");
  std::string old_text, why;
  if (!ReadFile(cfg.keys_file_path, &old_text, &why)) return Fail(KeyEditResult::kPrecondition, why);
  std::vector<KeyConfig> keys;
  auto errors = ParseKeysFile(old_text, cfg.keys_file_path, cfg, &keys);
  if (!errors.empty()) return Fail(KeyEditResult::kPrecondition, "fix the keys file first: " + errors[0].ToString());
  size_t before = keys.size();
  keys.erase(std::remove_if(keys.begin(), keys.end(), [&](const KeyConfig& k) { return k.id == id; }), keys.end());
  if (keys.size() == before) return Fail(KeyEditResult::kNotFound, "no key '" + id + "' in " + cfg.keys_file_path);
  if (!WriteFileAtomic(cfg.keys_file_path, RenderKeysFile(keys), &why)) return Fail(KeyEditResult::kFailed, why);
  ReloadOutcome o = ReloadFromFile();
  if (!o.ok) {
    WriteFileAtomic(cfg.keys_file_path, old_text, &why);
    return Fail(KeyEditResult::kFailed, "reload refused the keys file: " + (o.errors.empty() ? "" : o.errors[0]));
  }
  LOG_INFO("API key revoked", {{"key", id}, {"keys_file", cfg.keys_file_path}});
  KeyEditResult r;
  r.config_version = o.version;
  return r;
}

}  // namespace llmgw::cp
