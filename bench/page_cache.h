// Evicting files from the page cache, so that a timed load reads the disk
// and not memory, and checking that the eviction worked.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace tessera::bench {

// The pack files of the store at `store_dir`: what a load reads, and what
// drop_page_cache should evict before it is timed.
inline std::vector<std::string> pack_files(const std::string& store_dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(store_dir + "/packs"))
    if (e.is_regular_file()) out.push_back(e.path().string());
  return out;
}

// Evicts `files` from the page cache. Tries the global drop_caches first (we
// run as root on the dev box; it also drops the catalog and directory
// entries, as a fresh machine would have them); where /proc/sys is
// read-only (containers) falls back to POSIX_FADV_DONTNEED on each file,
// which drops its clean pages. Returns the method that was used.
inline std::string drop_page_cache(const std::vector<std::string>& files) {
  ::sync();  // only clean pages can be dropped
  std::string method = "fadvise";
  {
    std::ofstream f("/proc/sys/vm/drop_caches");
    if (f && (f << "1").flush()) method = "drop_caches";
  }
  // Always also fadvise: cheap, and certain for our files even if the write
  // above was accepted but ignored.
  for (const auto& path : files) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  return method;
}

// Bytes of `files` resident in the page cache (via mincore), to report that
// the drop took effect.
inline uint64_t cached_bytes(const std::vector<std::string>& files) {
  const long page = ::sysconf(_SC_PAGESIZE);
  uint64_t total = 0;
  for (const auto& path : files) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
      if (p != MAP_FAILED) {
        std::vector<unsigned char> vec((static_cast<size_t>(st.st_size) + page - 1) / page);
        if (::mincore(p, static_cast<size_t>(st.st_size), vec.data()) == 0)
          for (unsigned char v : vec) total += (v & 1) ? static_cast<uint64_t>(page) : 0;
        ::munmap(p, static_cast<size_t>(st.st_size));
      }
    }
    ::close(fd);
  }
  return total;
}

}  // namespace tessera::bench
