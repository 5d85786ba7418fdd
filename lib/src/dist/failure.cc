#include "dist/failure.h"

#include <algorithm>
#include <charconv>

namespace tessera::dist {

Failure Failure::of(const std::exception& e) { return Failure{error_kind(e), e.what()}; }

std::string Failure::encode() const { return std::to_string(static_cast<int>(kind)) + ":" + what; }

Failure Failure::decode(const std::string& s) {
  const size_t colon = s.find(':');
  int kind = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + std::min(colon, s.size()), kind);
  if (colon == std::string::npos || colon == 0 || ec != std::errc() || end != s.data() + colon)
    return Failure{ErrorKind::kError, s};  // not ours: pass the text on
  return Failure{static_cast<ErrorKind>(kind), s.substr(colon + 1)};
}

void Failure::raise() const { throw_error(kind, what); }

int64_t kind_number(const std::exception_ptr& failure) {
  if (!failure) return -1;
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    return static_cast<int64_t>(error_kind(e));
  } catch (...) {
    return static_cast<int64_t>(ErrorKind::kError);
  }
}

}  // namespace tessera::dist

namespace tessera {

std::string FailureAgreement::ranks() const {
  std::string s;
  for (int64_t r : failed) s += (s.empty() ? "" : ", ") + std::to_string(r);
  return s;
}

FailureAgreement agree_on_failures(const std::vector<int64_t>& kinds) {
  FailureAgreement a;
  for (size_t r = 0; r < kinds.size(); ++r)
    if (kinds[r] >= 0) a.failed.push_back(static_cast<int64_t>(r));
  if (!a.failed.empty()) a.kind = kinds[a.failed[0]];
  return a;
}

}  // namespace tessera
