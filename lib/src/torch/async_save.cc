// AsyncSaver: copy into a staging lease on the caller's thread, save on a
// background thread. See tessera/async.h.
#include <ATen/ATen.h>
#include <ATen/DeviceAccelerator.h>
#include <c10/core/Event.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "tessera/async.h"
#include "tessera/error.h"
#include "tessera/torch.h"
#include "torch/staging_pool.h"

namespace tessera {
namespace {

int64_t volume_of(const Shape& s) {
  int64_t v = 1;
  for (int64_t d : s) v *= d;
  return v;
}

// Waits for the copies queued on the current stream of each device.
void wait_for_copies(const std::vector<c10::Device>& devices) {
  for (const c10::Device& d : devices) {
    c10::Event done(d.type());
    done.record(at::accelerator::getCurrentStream(d.index()));
    done.synchronize();
  }
}

}  // namespace

bool SaveHandle::done() const {
  if (!result_.valid()) throw Error("SaveHandle: no save (default-constructed handle)");
  return result_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

SaveResult SaveHandle::wait() const {
  if (!result_.valid()) throw Error("SaveHandle: no save (default-constructed handle)");
  return result_.get();
}

struct AsyncSaver::Impl {
  explicit Impl(const AsyncSaverOptions& o) : pool(o.max_staging_bytes, at::hasCUDA()) {
    worker = std::thread([this] { run(); });
  }
  ~Impl() {
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    wake.notify_all();
    worker.join();
  }

  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu);
        wake.wait(lock, [&] { return stopping || !jobs.empty(); });
        if (jobs.empty()) return;  // stopping, and everything queued has run
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      job();
    }
  }

  static std::vector<uint64_t> staging_sizes(const StateDict& state) {
    std::vector<uint64_t> sizes;
    for (const auto& [name, entry] : state.entries())
      if (const auto* te = std::get_if<TensorEntry>(&entry))
        sizes.push_back(static_cast<uint64_t>(std::max<int64_t>(volume_of(te->view.sizes), 0)) * te->view.elem_size);
    return sizes;
  }

  // Copies `state` into a staging lease; returns the host state and the lease.
  std::pair<StateDict, std::shared_ptr<StagingLease>> stage(const StateDict& state) {
    std::shared_ptr<StagingLease> lease = pool.acquire(staging_sizes(state));

    StateDict host;
    std::vector<c10::Device> devices;
    size_t i = 0;
    for (const auto& [name, entry] : state.entries()) {
      if (const auto* v = std::get_if<Value>(&entry)) {
        host.add_value(name, *v);
        continue;
      }
      const TensorEntry& te = std::get<TensorEntry>(entry);
      at::Tensor src = entry_tensor(name, te);
      if (dtype_name(src.scalar_type()) != te.view.dtype || src.sizes().vec() != te.view.sizes)
        throw InvalidArgument("tensor '" + name + "': its source tensor does not match its view");
      at::Tensor dst = lease->region(i++).view(src.scalar_type()).view(src.sizes());
      if (src.is_cuda() && std::find(devices.begin(), devices.end(), src.device()) == devices.end())
        devices.push_back(src.device());
      dst.copy_(src, /*non_blocking=*/src.is_cuda());
      TensorView v = te.view;
      v.data = static_cast<std::byte*>(dst.data_ptr());
      v.strides = Shape(dst.strides().begin(), dst.strides().end());
      host.add_tensor(name, v);
    }
    wait_for_copies(devices);
    return {std::move(host), std::move(lease)};
  }

  SaveHandle submit(const StateDict& state, std::function<SaveResult(const StateDict&)> save) {
    const auto start = std::chrono::steady_clock::now();
    auto [host, lease] = stage(state);
    auto promise = std::make_shared<std::promise<SaveResult>>();
    SaveHandle h;
    h.result_ = promise->get_future().share();
    h.blocked_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    {
      std::lock_guard lock(mu);
      jobs.push_back([promise, save = std::move(save), host = std::move(host), lease = std::move(lease)]() mutable {
        try {
          promise->set_value(save(host));
        } catch (...) {
          promise->set_exception(std::current_exception());
        }
        lease.reset();  // staging back to the pool before the next job
      });
    }
    wake.notify_all();
    return h;
  }

  StagingPool pool;
  std::mutex mu;
  std::condition_variable wake;
  std::deque<std::function<void()>> jobs;
  bool stopping = false;
  std::thread worker;
};

AsyncSaver::AsyncSaver(AsyncSaverOptions options) : impl_(std::make_unique<Impl>(options)) {}
AsyncSaver::~AsyncSaver() = default;

SaveHandle AsyncSaver::save(const StateDict& state, Store& store, const std::string& checkpoint,
                            const SaveOptions& options) {
  return impl_->submit(state, [store, checkpoint, options](const StateDict& host) mutable {
    return tessera::save(host, store, checkpoint, options);
  });
}

void AsyncSaver::reserve(const StateDict& state) { impl_->pool.acquire(Impl::staging_sizes(state)); }

uint64_t AsyncSaver::staging_bytes() const { return impl_->pool.held_bytes(); }

}  // namespace tessera
