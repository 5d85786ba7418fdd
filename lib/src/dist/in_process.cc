#include <condition_variable>
#include <map>
#include <mutex>

#include "tessera/distributed.h"
#include "tessera/error.h"

namespace tessera {
namespace {

struct SharedMap {
  std::mutex mu;
  std::condition_variable changed;
  std::map<std::string, std::string> values;
};

// The semantics of c10d's HashStore / TCPStore, on one map.
class InProcessPlane : public ControlPlane {
 public:
  InProcessPlane(std::shared_ptr<SharedMap> map, int64_t rank, int64_t world)
      : map_(std::move(map)), rank_(rank), world_(world) {}
  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_; }
  void set(const std::string& key, const std::string& value) override {
    {
      std::lock_guard lock(map_->mu);
      map_->values[key] = value;
    }
    map_->changed.notify_all();
  }
  std::optional<std::string> wait_get(const std::string& key, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(map_->mu);
    if (!map_->changed.wait_for(lock, timeout, [&] { return map_->values.count(key) != 0; })) return std::nullopt;
    return map_->values[key];
  }
  int64_t add(const std::string& key, int64_t delta) override {
    int64_t sum = 0;
    {
      std::lock_guard lock(map_->mu);
      auto it = map_->values.find(key);
      sum = (it == map_->values.end() ? 0 : std::stoll(it->second)) + delta;
      map_->values[key] = std::to_string(sum);
    }
    map_->changed.notify_all();
    return sum;
  }
  std::string compare_set(const std::string& key, const std::string& expected, const std::string& desired) override {
    std::string now;
    {
      std::lock_guard lock(map_->mu);
      auto it = map_->values.find(key);
      if (it == map_->values.end()) {
        if (!expected.empty()) return expected;  // as c10d does
        map_->values[key] = desired;
      } else if (it->second == expected) {
        it->second = desired;
      }
      now = map_->values[key];
    }
    map_->changed.notify_all();
    return now;
  }
  bool delete_key(const std::string& key) override {
    std::lock_guard lock(map_->mu);
    return map_->values.erase(key) != 0;
  }
  size_t key_count() const {
    std::lock_guard lock(map_->mu);
    return map_->values.size();
  }

 private:
  std::shared_ptr<SharedMap> map_;
  int64_t rank_, world_;
};

}  // namespace

std::vector<std::unique_ptr<ControlPlane>> in_process_control_planes(int64_t world_size) {
  auto map = std::make_shared<SharedMap>();
  std::vector<std::unique_ptr<ControlPlane>> planes;
  for (int64_t r = 0; r < world_size; ++r) planes.push_back(std::make_unique<InProcessPlane>(map, r, world_size));
  return planes;
}

size_t in_process_key_count(const ControlPlane& plane) {
  const auto* p = dynamic_cast<const InProcessPlane*>(&plane);
  if (!p) throw InvalidArgument("in_process_key_count: not an in-process control plane");
  return p->key_count();
}

}  // namespace tessera
