// Helpers shared by the benchmarks: a stopwatch, fast synthetic weights, and
// byte-size formatting. Header-only; no LibTorch.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace tessera::bench {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kMiB = 1024.0 * 1024.0;

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// CPU seconds (user + system) that `ru` records.
inline double cpu_seconds(const rusage& ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}
// Those of `who`: RUSAGE_SELF (the process, all threads) or RUSAGE_THREAD
// (the calling thread).
inline double cpu_seconds(int who) {
  rusage ru{};
  ::getrusage(who, &ru);
  return cpu_seconds(ru);
}

// xorshift64*: a few cycles per number. Benchmark data only needs to look
// like weights to the codecs, not to pass statistical tests.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {
    if (s_ == 0) s_ = 1;
    for (int i = 0; i < 4; ++i) next();  // decorrelate nearby seeds
  }
  uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }

 private:
  uint64_t s_;
};

// An approximately standard-normal float from 64 random bits: the sum of
// three 21-bit uniforms (Irwin-Hall, n = 3) has mean 3m/2 and standard
// deviation 2^20. No log/sqrt/branches, so a core fills ~1 GiB/s; the tails
// stop at ±3.46 sigma, which the codecs do not care about. ~22 bits of
// entropy per value keep fp32 mantissas as incompressible as real ones.
inline float approx_normal(uint64_t r) {
  constexpr uint64_t m = (1u << 21) - 1;
  const int64_t sum = static_cast<int64_t>((r & m) + ((r >> 21) & m) + ((r >> 42) & m));
  return (static_cast<float>(sum) - 1.5f * static_cast<float>(m)) * (1.0f / (1 << 20));
}

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// bf16 as trainers keep it when they truncate: the top half of the fp32 bits.
inline uint16_t bf16_truncate(float f) { return static_cast<uint16_t>(float_bits(f) >> 16); }

// Calls put(i, random64) for i in [0, n). Four independent generators run
// interleaved: one xorshift chain is latency-bound, four keep the core busy
// (about 2x the throughput).
template <class Put>
inline void fill_with(size_t n, uint64_t seed, Put put) {
  Rng a(4 * seed), b(4 * seed + 1), c(4 * seed + 2), d(4 * seed + 3);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    put(i, a.next());
    put(i + 1, b.next());
    put(i + 2, c.next());
    put(i + 3, d.next());
  }
  for (; i < n; ++i) put(i, a.next());
}

// Fill `n` fp32 values ~ N(0, sigma²).
inline void fill_normal_f32(float* out, size_t n, float sigma, uint64_t seed) {
  fill_with(n, seed, [&](size_t i, uint64_t r) { out[i] = approx_normal(r) * sigma; });
}

// Fill `n` bf16 values ~ N(0, sigma²), truncated from fp32.
// bf16 keeps 8 significant bits, so two values share one 64-bit draw (each
// an Irwin-Hall sum of three 10-bit uniforms): twice as fast as fp32's recipe.
inline void fill_normal_bf16(uint16_t* out, size_t n, float sigma, uint64_t seed) {
  constexpr uint64_t m = (1u << 10) - 1;
  const float scale = sigma / (1 << 9);  // Irwin-Hall n=3 of 10-bit uniforms: sd = 2^9
  auto one = [&](uint64_t r) {
    const float sum = static_cast<float>((r & m) + ((r >> 10) & m) + ((r >> 20) & m));
    return bf16_truncate((sum - 1.5f * m) * scale);
  };
  fill_with((n + 1) / 2, seed, [&](size_t i, uint64_t r) {
    out[2 * i] = one(r);
    if (2 * i + 1 < n) out[2 * i + 1] = one(r >> 32);
  });
}

// "1.50 GiB", "12.0 MiB", "512 B".
inline std::string human_bytes(double b) {
  char buf[32];
  if (b >= kGiB) std::snprintf(buf, sizeof buf, "%.2f GiB", b / kGiB);
  else if (b >= kMiB) std::snprintf(buf, sizeof buf, "%.1f MiB", b / kMiB);
  else std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

}  // namespace tessera::bench
