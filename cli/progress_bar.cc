#include "progress_bar.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "table.h"

namespace tessera::cli {

const Flag kQuietFlag{"--quiet", "", "no progress bar (it is shown only when stderr is a terminal)"};

namespace {

std::string seconds_text(double s) {
  if (s < 90) return std::to_string(static_cast<int>(std::ceil(s))) + " s";
  if (s < 5400) return std::to_string(static_cast<int>(std::ceil(s / 60))) + " min";
  return std::to_string(static_cast<int>(std::ceil(s / 3600))) + " h";
}

// "verify  42%  2.9 GiB of 7.0 GiB  410.0 MiB/s  ETA 10 s"
std::string line_of(const Progress& p) {
  std::string line(p.operation);
  const double rate = p.seconds > 0 ? static_cast<double>(p.done_bytes) / p.seconds : 0;
  if (p.total_bytes > 0) {
    const int pct = static_cast<int>(100.0 * static_cast<double>(p.done_bytes) / static_cast<double>(p.total_bytes));
    line += "  " + std::to_string(pct) + "%  " + human_bytes(p.done_bytes) + " of " + human_bytes(p.total_bytes);
  } else {
    line += "  " + human_bytes(p.done_bytes);
  }
  line += "  " + human_bytes(static_cast<uint64_t>(rate)) + "/s";
  if (p.total_bytes > p.done_bytes && rate > 0)
    line += "  ETA " + seconds_text(static_cast<double>(p.total_bytes - p.done_bytes) / rate);
  return line;
}

}  // namespace

ProgressFn progress_bar(const Invocation& inv) {
  if (inv.has("--quiet") || inv.has("--json") || !::isatty(STDERR_FILENO)) return {};
  return [drawn = false](const Progress& p) mutable {
    if (p.finished) {
      if (drawn) std::fputs("\r\033[K", stderr);  // erase the bar: the output follows as without it
      std::fflush(stderr);
      return;
    }
    std::fprintf(stderr, "\r\033[K%s", line_of(p).c_str());
    std::fflush(stderr);
    drawn = true;
  };
}

}  // namespace tessera::cli
