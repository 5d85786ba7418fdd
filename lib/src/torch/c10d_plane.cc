#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>

#include "tessera/c10d.h"
#include "tessera/error.h"

namespace tessera {
namespace {

std::vector<uint8_t> bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// Each operation is one call of c10d's Store, except wait_get: wait(keys,
// timeout), then get (c10d's get has no timeout of its own).
class C10dPlane : public ControlPlane {
 public:
  C10dPlane(c10::intrusive_ptr<c10d::Store> store, int64_t rank, int64_t world)
      : store_(std::move(store)), rank_(rank), world_(world) {}
  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_; }
  void set(const std::string& key, const std::string& value) override { store_->set(key, value); }
  std::optional<std::string> wait_get(const std::string& key, std::chrono::milliseconds timeout) override {
    try {
      store_->wait({key}, timeout);
    } catch (const c10::Error&) {  // DistStoreError on timeout
      return std::nullopt;
    }
    return store_->get_to_str(key);
  }
  int64_t add(const std::string& key, int64_t delta) override { return store_->add(key, delta); }
  std::string compare_set(const std::string& key, const std::string& expected, const std::string& desired) override {
    auto now = store_->compareSet(key, bytes(expected), bytes(desired));
    return std::string(now.begin(), now.end());
  }
  bool delete_key(const std::string& key) override { return store_->deleteKey(key); }

 private:
  c10::intrusive_ptr<c10d::Store> store_;
  int64_t rank_, world_;
};

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::optional<std::string>(v) : std::nullopt;
}

int64_t env_int(const char* name, int64_t fallback) {
  auto v = env(name);
  if (!v) return fallback;
  try {
    size_t used = 0;
    int64_t x = std::stoll(*v, &used);
    if (used == v->size()) return x;
  } catch (...) {
  }
  throw InvalidArgument(std::string("environment variable ") + name + "='" + *v + "' is not an integer");
}

}  // namespace

JobEnvironment JobEnvironment::from_env() {
  JobEnvironment e;
  e.rank = env_int("RANK", 0);
  e.world_size = env_int("WORLD_SIZE", 1);
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  e.master_addr = env("MASTER_ADDR").value_or("127.0.0.1");
  e.master_port = static_cast<int>(env_int("MASTER_PORT", 29500));
  e.agent_store = env("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  e.restart_count = env("TORCHELASTIC_RESTART_COUNT").value_or("0");
  if (e.world_size < 1 || e.rank < 0 || e.rank >= e.world_size)
    throw InvalidArgument("RANK=" + std::to_string(e.rank) + " is not within WORLD_SIZE=" + std::to_string(e.world_size));
  if (e.master_port <= 0 || e.master_port > 65535)
    throw InvalidArgument("MASTER_PORT=" + std::to_string(e.master_port) + " is not a port");
  return e;
}

c10::intrusive_ptr<c10d::Store> connect_store(const JobEnvironment& e, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(e.master_port);
  o.isServer = !e.agent_store && e.rank == 0;
  o.numWorkers = e.agent_store ? std::nullopt : std::optional<size_t>(static_cast<size_t>(e.world_size));
  o.waitWorkers = false;
  o.timeout = timeout;
  auto tcp = c10::make_intrusive<c10d::TCPStore>(e.master_addr, o);
  if (e.agent_store) return c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + e.restart_count, tcp);
  return tcp;
}

std::unique_ptr<ControlPlane> control_plane(c10::intrusive_ptr<c10d::Store> store, int64_t rank, int64_t world_size) {
  return std::make_unique<C10dPlane>(std::move(store), rank, world_size);
}

}  // namespace tessera
