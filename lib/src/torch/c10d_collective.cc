// A c10d::Backend as the replicated load's Collective (tessera/c10d.h,
// tessera/replicas.h). The protocol is dist/replicated_load.cc's; this file
// only moves tensors.
#include <ATen/ATen.h>
#include <ATen/DeviceAccelerator.h>

#include <memory>
#include <string>
#include <vector>

#include "tessera/c10d.h"
#include "tessera/torch.h"

namespace tessera {
namespace {

// The Collective of a c10d::Backend: tensors and the allgather on the GPU
// for NCCL, on the host otherwise.
class C10dCollective : public Collective {
 public:
  explicit C10dCollective(c10d::Backend& backend) : backend_(backend) {}

  int64_t rank() const override { return backend_.getRank(); }
  int64_t size() const override { return backend_.getSize(); }

  size_t hold(const std::string& name, const TensorEntry& entry) override {
    at::Tensor target = entry_tensor(name, entry);
    at::Tensor work = target.is_contiguous() ? target : at::empty_like(target, at::MemoryFormat::Contiguous);
    held_.push_back(Held{target, work});
    return held_.size() - 1;
  }

  void add_rows(StateDict& state, const std::string& name, size_t handle, int64_t begin, int64_t end,
                const Shape& global_shape, const Shape& offsets) override {
    add_shard(state, name, rows(held_[handle].work, begin, end), global_shape, offsets);
  }

  std::vector<std::vector<int64_t>> allgather(const std::vector<int64_t>& mine) override {
    const bool on_gpu = backend_.getBackendName() == "nccl";
    const at::Device device =
        on_gpu ? at::Device(at::kCUDA, at::accelerator::getDeviceIndex()) : at::Device(at::kCPU);
    at::Tensor mine_t = at::tensor(mine, at::TensorOptions().dtype(at::kLong)).to(device);
    std::vector<std::vector<at::Tensor>> gathered(1);
    for (int64_t r = 0; r < size(); ++r) gathered[0].push_back(at::empty_like(mine_t));
    std::vector<at::Tensor> input{mine_t};
    backend_.allgather(gathered, input)->wait();
    std::vector<std::vector<int64_t>> all;
    for (const at::Tensor& t : gathered[0]) {
      const at::Tensor host = t.to(at::kCPU);
      const int64_t* p = host.data_ptr<int64_t>();
      all.emplace_back(p, p + host.numel());
    }
    return all;
  }

  void broadcast(size_t handle, int64_t begin, int64_t end, int64_t root) override {
    const at::Tensor& work = held_[handle].work;
    std::vector<at::Tensor> tensors{work.dim() == 0 ? work.reshape({1}) : rows(work, begin, end)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    works_.push_back(backend_.broadcast(tensors, o));
  }

  void finish() override {
    for (auto& w : works_) w->wait();
    works_.clear();
    for (const Held& h : held_)
      if (!h.work.is_same(h.target)) h.target.copy_(h.work);
    held_.clear();
  }

  void abandon() override {
    works_.clear();
    held_.clear();
  }

 private:
  struct Held {
    at::Tensor target;  // the entry's tensor
    at::Tensor work;    // contiguous: the target itself, or a temporary copied back by finish()
  };

  // Rows [begin, end) of dimension 0; a 0-D tensor is itself.
  static at::Tensor rows(const at::Tensor& t, int64_t begin, int64_t end) {
    return t.dim() == 0 ? t : t.narrow(0, begin, end - begin);
  }

  c10d::Backend& backend_;
  std::vector<Held> held_;
  std::vector<c10::intrusive_ptr<c10d::Work>> works_;
};

}  // namespace

std::unique_ptr<Collective> collective(c10d::Backend& group) { return std::make_unique<C10dCollective>(group); }

}  // namespace tessera
