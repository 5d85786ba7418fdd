#include <condition_variable>
#include <map>
#include <mutex>

#include "tessera/distributed.h"

namespace tessera {
namespace {

struct SharedMap {
  std::mutex mu;
  std::condition_variable changed;
  std::map<std::string, std::string> values;
};

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

}  // namespace tessera
